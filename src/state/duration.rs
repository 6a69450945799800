//! Durations as people write them (`"30s"`, `"5m"`, `"1h 30m"`, humantime) or as a number
//! of seconds, with one upper bound everywhere. `deserialize` and `deserialize_positive` are
//! the serde helpers config files and task configs use.

use std::time::Duration;

use serde::Deserializer;
use serde::de::{Error, Visitor};

use crate::state::shown;

/// The longest duration vigil accepts anywhere (a timeout, a retention age, an interval):
/// 100 years. Longer ones are typos, and they would overflow date arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A duration as people write it (`"30s"`, `"5m"`, `"1h 30m"`, humantime), at most
/// [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| {
        format!(
            "invalid duration `{}`: {e}; write e.g. \"30s\", \"5m\" or \"1h 30m\"",
            shown(s, 40)
        )
    })?;
    check_duration(d).map_err(|e| format!("duration `{}` {e}", shown(s, 40)))
}

/// `d` if it is at most [`MAX_DURATION`].
pub fn check_duration(d: Duration) -> Result<Duration, String> {
    if d > MAX_DURATION {
        Err("is longer than 100 years, the most vigil accepts".into())
    } else {
        Ok(d)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a duration like \"30s\" or \"5m\", or a number of seconds")
    }

    fn visit_str<E: Error>(self, s: &str) -> Result<Duration, E> {
        parse_duration(s).map_err(E::custom)
    }

    fn visit_u64<E: Error>(self, secs: u64) -> Result<Duration, E> {
        check_duration(Duration::from_secs(secs))
            .map_err(|e| E::custom(format!("duration {secs} s {e}")))
    }

    fn visit_i64<E: Error>(self, secs: i64) -> Result<Duration, E> {
        u64::try_from(secs)
            .map_err(|_| E::custom(format!("invalid duration {secs}: it is negative")))
            .and_then(|s| self.visit_u64(s))
    }

    fn visit_f64<E: Error>(self, secs: f64) -> Result<Duration, E> {
        let d = Duration::try_from_secs_f64(secs)
            .map_err(|_| E::custom(format!("invalid duration {secs}: use 0 or more seconds")))?;
        check_duration(d).map_err(|e| E::custom(format!("duration {secs} s {e}")))
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// A duration that must be more than zero: an interval or lease of zero would make the
/// loop it paces spin.
pub fn deserialize_positive<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let value = d.deserialize_any(DurationVisitor)?;
    if value.is_zero() {
        return Err(D::Error::custom(
            "must be more than zero (it paces a loop that would otherwise spin); write e.g. \"1s\"",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_are_bounded() {
        assert_eq!(super::parse_duration("5m").unwrap().as_secs(), 300);
        let err = super::parse_duration("300000y").unwrap_err();
        assert!(err.contains("longer than 100 years"), "{err}");
        assert!(super::parse_duration("5 parsecs").is_err());
    }
}
