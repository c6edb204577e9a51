//! Name rules shared by the server (which enforces them) and the CLI (which
//! checks early so a typo never costs a round trip).

use thiserror::Error;

/// Longest shed name; keeps `PREFIX.shed-NAME-workspace` well inside Docker's limits.
pub const MAX_SHED_NAME_LEN: usize = 63;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name is empty.
    #[error("name must not be empty")]
    Empty,
    /// The name is longer than allowed.
    #[error("name is {len} characters long; the limit is {max}")]
    TooLong {
        /// Actual length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name has a character outside the allowed set, or starts wrongly.
    #[error("{0}")]
    BadCharacters(&'static str),
}

/// Checks a name's length and characters against a rule.
fn validate(
    name: &str,
    first_ok: fn(u8) -> bool,
    rest_ok: fn(u8) -> bool,
    rule: &'static str,
) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_SHED_NAME_LEN {
        return Err(NameError::TooLong {
            len: name.len(),
            max: MAX_SHED_NAME_LEN,
        });
    }
    let bytes = name.as_bytes();
    if first_ok(bytes[0]) && bytes.iter().all(|b| rest_ok(*b)) {
        Ok(())
    } else {
        Err(NameError::BadCharacters(rule))
    }
}

/// Checks `^[a-z0-9][a-z0-9-]{0,62}$`, the shed name rule.
///
/// Names become Docker container and volume names and SSH user names, so the
/// set is deliberately the intersection of what all three accept unchanged.
pub fn validate_shed_name(name: &str) -> Result<(), NameError> {
    validate(
        name,
        |b| b.is_ascii_lowercase() || b.is_ascii_digit(),
        |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-',
        "use lowercase letters, digits and '-', starting with a letter or digit",
    )
}

/// Checks `^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`, the tmux session name rule.
///
/// tmux silently rewrites `.` and `:` (`a.b` becomes `a_b`), which would make
/// a session unreachable under the name the user gave, so such names are
/// refused rather than passed through.
pub fn validate_session_name(name: &str) -> Result<(), NameError> {
    validate(
        name,
        |b| b.is_ascii_alphanumeric(),
        |b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
        "use letters, digits, '_' and '-', starting with a letter or digit",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for name in ["a", "demo", "my-proj-2", "0abc", &"a".repeat(63)] {
            assert_eq!(validate_shed_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_invalid_names() {
        let long = "a".repeat(64);
        for name in [
            "", "-a", "A", "a_b", "a.b", "a b", "../x", "a;b", "$(x)", "`x`", "é", "a\0", &long,
        ] {
            assert!(validate_shed_name(name).is_err(), "{name:?} accepted");
        }
    }

    #[test]
    fn session_names() {
        for name in ["default", "Debug_2", "a-b", "0", &"s".repeat(63)] {
            assert_eq!(validate_session_name(name), Ok(()), "{name}");
        }
        let long = "s".repeat(64);
        for name in [
            "", "a.b", "a:b", "-a", "_a", "a b", "a;b", "$(x)", "é", &long,
        ] {
            assert!(validate_session_name(name).is_err(), "{name:?} accepted");
        }
    }
}
