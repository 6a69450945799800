//! Email over SMTP (lettre). Builds the MIME message of an outbox row and sends it,
//! sorting what went wrong into "try again later" and "this will never work".

use std::fmt;
use std::time::Duration;

use lettre::Message;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use sha2::{Digest, Sha256};

use crate::notify::{Attempt, NotifyError, address};
use crate::notify::{SmtpConfig, TlsMode};
use crate::store::OutboxMessage;

/// A secret read from the environment or a file. Its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The SMTP password named by the config, if any.
pub fn password(c: &SmtpConfig) -> Result<Option<Secret>, NotifyError> {
    if let Some(var) = &c.password_env {
        crate::state::secret_env::hide_from_tasks(var);
        return match std::env::var(var) {
            Ok(p) if !p.is_empty() => Ok(Some(Secret(p))),
            _ => Err(NotifyError::Config(format!(
                "smtp.password_env names the environment variable {var}, which is not set; export it or remove the key"
            ))),
        };
    }
    if let Some(path) = &c.password_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            NotifyError::Config(format!(
                "cannot read smtp.password_file {}: {e}",
                path.display()
            ))
        })?;
        let first = text.lines().next().unwrap_or_default().to_string();
        if first.is_empty() {
            return Err(NotifyError::Config(format!(
                "smtp.password_file {} is empty",
                path.display()
            )));
        }
        return Ok(Some(Secret(first)));
    }
    Ok(None)
}

/// A `Message-ID` header taken verbatim (lettre's own would be random per send).
#[derive(Clone)]
struct StableMessageId(String);

impl Header for StableMessageId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Message-ID")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(StableMessageId(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// The Message-ID of outbox row `m`: the same every time the row is sent, different for
/// every row (and for rows of different databases, through the creation time). A crash
/// after sending but before recording it can repeat a message, never invent a new one, so
/// mail clients and `grep` see one message.
pub fn message_id(m: &OutboxMessage, from: &Mailbox) -> String {
    let mut h = Sha256::new();
    h.update(m.id.to_be_bytes());
    h.update(m.created_at.to_rfc3339().as_bytes());
    h.update(m.subject.as_bytes());
    let digest = h.finalize();
    let tag: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("<vigil.{}.{tag}@{}>", m.id, from.email.domain())
}

/// Sends email with the configured relay.
///
/// It drives lettre's SMTP connection itself rather than `AsyncSmtpTransport`, because the
/// transport waits for the reply to `QUIT` with no time limit and reports a stall there as a
/// failed send: a server that accepted the message and then hung on `QUIT` got it again at
/// every retry. Here, once the server has answered the message's `DATA` with success, the
/// message is sent, whatever `QUIT` does.
pub struct Mailer {
    hostname: String,
    port: u16,
    tls: SmtpTls,
    credentials: Option<Credentials>,
    from: Mailbox,
    host: String,
    timeout: Duration,
}

/// How the connection is secured.
enum SmtpTls {
    None,
    Starttls(TlsParameters),
    Wrapper(TlsParameters),
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.host)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// `Ok(None)` when `[smtp] host` is empty: email is not set up.
    pub fn from_config(c: &SmtpConfig) -> Result<Option<Mailer>, NotifyError> {
        if c.host.is_empty() {
            return Ok(None);
        }
        let from = address::check_email(&c.from)
            .map_err(|e| NotifyError::Config(format!("smtp.from: {e}")))?;
        let tls = |host: &str| {
            TlsParameters::new(host.to_string())
                .map_err(|e| NotifyError::Config(format!("smtp.tls for {host}: {e}")))
        };
        let credentials = match &c.username {
            None => None,
            Some(user) => {
                let secret = password(c)?.ok_or_else(|| {
                    NotifyError::Config(
                        "smtp.username is set but no password: set smtp.password_env or smtp.password_file"
                            .into(),
                    )
                })?;
                Some(Credentials::new(user.clone(), secret.expose().to_string()))
            }
        };
        Ok(Some(Mailer {
            hostname: c.host.clone(),
            port: c.port(),
            tls: match c.tls {
                TlsMode::None => SmtpTls::None,
                TlsMode::Starttls => SmtpTls::Starttls(tls(&c.host)?),
                TlsMode::Tls => SmtpTls::Wrapper(tls(&c.host)?),
            },
            credentials,
            from,
            host: format!("{}:{}", c.host, c.port()),
            timeout: c.timeout,
        }))
    }

    /// Connects, secures, logs in and sends; returns the reply to the message's `DATA` and
    /// the connection, still open.
    async fn deliver(
        &self,
        message: &Message,
    ) -> Result<(Response, AsyncSmtpConnection), lettre::transport::smtp::Error> {
        let hello = ClientId::default();
        let wrapper = match &self.tls {
            SmtpTls::Wrapper(p) => Some(p.clone()),
            _ => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.hostname.as_str(), self.port),
            Some(self.timeout),
            &hello,
            wrapper,
            None,
        )
        .await?;
        if let SmtpTls::Starttls(p) = &self.tls {
            conn.starttls(p.clone(), &hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await?;
        }
        let reply = conn.send(message.envelope(), &message.formatted()).await?;
        Ok((reply, conn))
    }

    pub fn server(&self) -> &str {
        &self.host
    }

    /// The MIME message of `m`: plain text with an HTML alternative when there is one.
    pub fn message(&self, m: &OutboxMessage) -> Result<Message, String> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(crate::notify::message::sanitize_header(&m.subject))
            .header(StableMessageId(message_id(m, &self.from)))
            .date(m.created_at.into());
        for r in &m.recipients {
            b = b.to(address::check_email(r)?);
        }
        let plain = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(m.body.clone());
        let built = match &m.html {
            Some(html) => b.multipart(
                MultiPart::alternative().singlepart(plain).singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.clone()),
                ),
            ),
            None => b.singlepart(plain),
        };
        built.map_err(|e| format!("cannot build the message: {e}"))
    }

    /// One delivery attempt of `m`, bounded by the configured timeout twice over (connect,
    /// then the whole conversation: lettre's async transport has no per-command timeout).
    pub async fn send(&self, m: &OutboxMessage) -> Attempt {
        let message = match self.message(m) {
            Ok(message) => message,
            // A bad address in a queued row will not get better by waiting.
            Err(e) => return Attempt::Permanent(e),
        };
        match tokio::time::timeout(self.timeout * 2, self.deliver(&message)).await {
            Err(_) => Attempt::Transient(format!(
                "{} did not answer within {}",
                self.host,
                humantime::format_duration(self.timeout * 2)
            )),
            Ok(Ok((reply, mut conn))) => {
                // Accepted: a QUIT that stalls or fails changes nothing.
                let _ = tokio::time::timeout(self.timeout, conn.quit()).await;
                Attempt::Sent(format!(
                    "{} {}",
                    reply.code(),
                    reply.message().collect::<Vec<_>>().join(" ")
                ))
            }
            Ok(Err(e)) if e.is_permanent() => {
                Attempt::Permanent(format!("{} rejected the message: {e}", self.host))
            }
            Ok(Err(e)) => Attempt::Transient(format!("{}: {e}", self.host)),
        }
    }
}
