//! Checks of the places messages go, shared by the config and DAG loading so both reject a
//! typo with the same words.

use lettre::message::Mailbox;

/// An email address, bare (`ops@example.com`) or with a name (`Ops <ops@example.com>`).
pub fn check_email(s: &str) -> Result<Mailbox, String> {
    s.parse::<Mailbox>().map_err(|e| {
        format!("`{s}` is not an email address ({e}); write `name@example.com` or `Name <name@example.com>`")
    })
}

/// An `http://` or `https://` URL with a host.
pub fn check_url(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("`{s}` is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "`{s}` is not an http(s) URL; write it like `https://hooks.example.com/path`"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_urls_are_checked() {
        assert!(check_email("ops@example.com").is_ok());
        assert!(check_email("Ops Team <ops@example.com>").is_ok());
        let e = check_email("ops.example.com").unwrap_err();
        assert!(
            e.contains("`ops.example.com` is not an email address"),
            "{e}"
        );
        assert!(check_email("a@b.c\r\nBcc: x@y.z").is_err());
        assert!(check_url("https://hooks.slack.com/services/T/B/X").is_ok());
        assert!(check_url("ftp://x.example.com").is_err());
        assert!(check_url("hooks.slack.com/x").is_err());
    }
}
