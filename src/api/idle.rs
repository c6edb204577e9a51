//! `idle_stop_after` durations, written the same way in the server config,
//! in the server config and on the command line: whole seconds, or numbers
//! with units as the CLI's other durations take them (`90s`, `30m`, `1h30m`,
//! `1d`); `0` or `off` turns auto-stop off. On the wire it is seconds.

use serde::{Deserialize, Deserializer};
use thiserror::Error;

/// Longest `idle_stop_after` accepted: past a month, "never" is the honest value.
pub const MAX_IDLE_STOP_AFTER_SECS: u64 = 30 * 24 * 3600;

/// Why an `idle_stop_after` is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdleStopAfterError {
    /// The text is not a duration in the accepted syntax.
    #[error(
        "idle_stop_after {0:?} is not a duration: use seconds, or numbers with s, m, h or d (\"30m\", \"1h30m\"), or \"off\""
    )]
    NotADuration(String),
    /// Longer than [`MAX_IDLE_STOP_AFTER_SECS`]; the seconds given.
    #[error(
        "idle_stop_after {0}s is longer than the most allowed, {MAX_IDLE_STOP_AFTER_SECS}s (30d); use 0 or \"off\" to turn it off"
    )]
    TooLong(u64),
}

/// Seconds in `text` (see the module doc); 0 means off.
pub fn parse_idle_stop_after(text: &str) -> Result<u64, IdleStopAfterError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    if text.is_empty() {
        return Err(bad(text));
    }
    // The CLI's duration syntax (`1h30m`), in whole seconds.
    let mut secs: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 12 {
            return Err(bad(text));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad(text))?;
        rest = &rest[digits..];
        let unit = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let scale = match &rest[..unit] {
            // Bare seconds only as the whole text: "1h30" is a typo.
            "" if digits == text.len() => 1,
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad(text)),
        };
        rest = &rest[unit..];
        secs = secs.saturating_add(n.saturating_mul(scale));
    }
    check_idle_stop_after(secs)
}

/// `secs` if it is within [`MAX_IDLE_STOP_AFTER_SECS`].
pub fn check_idle_stop_after(secs: u64) -> Result<u64, IdleStopAfterError> {
    if secs > MAX_IDLE_STOP_AFTER_SECS {
        return Err(IdleStopAfterError::TooLong(secs));
    }
    Ok(secs)
}

fn bad(text: &str) -> IdleStopAfterError {
    IdleStopAfterError::NotADuration(text.to_string())
}

/// Deserializes an `idle_stop_after` given as an integer of seconds or as a
/// string for [`parse_idle_stop_after`].
pub fn deserialize_idle_stop_after<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(de)? {
        Raw::Secs(secs) => check_idle_stop_after(secs),
        Raw::Text(text) => parse_idle_stop_after(&text),
    }
    .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        for (text, secs) in [
            ("0", 0),
            ("off", 0),
            ("OFF", 0),
            ("45", 45),
            ("45s", 45),
            ("30m", 1800),
            ("1h30m", 5400),
            ("2h", 7200),
            ("1d", 86_400),
            ("30d", MAX_IDLE_STOP_AFTER_SECS),
        ] {
            assert_eq!(parse_idle_stop_after(text), Ok(secs), "{text}");
        }
        for bad in [
            "",
            "m",
            "-1",
            "1.5h",
            "10 m",
            "3w",
            "31d",
            "99999999999999999999",
        ] {
            assert!(parse_idle_stop_after(bad).is_err(), "{bad:?}");
        }
        // The messages users see, word for word.
        assert_eq!(
            parse_idle_stop_after("3w").unwrap_err().to_string(),
            "idle_stop_after \"3w\" is not a duration: use seconds, or numbers with s, m, h or d (\"30m\", \"1h30m\"), or \"off\""
        );
        assert_eq!(
            parse_idle_stop_after("31d").unwrap_err().to_string(),
            "idle_stop_after 2678400s is longer than the most allowed, 2592000s (30d); use 0 or \"off\" to turn it off"
        );
    }
}
