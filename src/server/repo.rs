//! Parsing of the `repo` field of a create request.

use thiserror::Error;

/// Why a `repo` value is refused. Messages show the input without its
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RepoError {
    /// Empty or blank.
    #[error("repo must not be empty")]
    Empty,
    /// Longer than any real URL.
    #[error("repo is too long")]
    TooLong,
    /// Neither a git URL nor `owner/repo`.
    #[error("repo {0:?} is not a git URL or owner/repo")]
    NotARepo(String),
    /// No usable directory name at the end of the URL.
    #[error("cannot derive a directory name from repo {0:?}")]
    NoDirectory(String),
}

/// A repository to clone, with the directory it lands in under `/workspace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSpec {
    /// URL handed to `git clone`; may hold credentials, so it is never
    /// stored, returned or logged: use [`RepoSpec::shown`] for that.
    pub url: String,
    /// Directory name under `/workspace`.
    pub dir: String,
    /// `url` without its user info (`user:pass@`), safe to store and show.
    pub shown: String,
}

/// `url` without the user info of a `scheme://user:pass@host/...` URL.
/// scp-like `user@host:path` keeps its user, which is a login name, not a secret.
pub fn without_user_info(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

impl RepoSpec {
    /// `text` (git's output, say) with this spec's credentials taken out.
    pub fn redact(&self, text: &str) -> String {
        if self.url == self.shown {
            return text.to_string();
        }
        let mut text = text.replace(&self.url, &self.shown);
        if let Some((_, rest)) = self.url.split_once("://") {
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            if let Some(at) = rest[..authority_end].rfind('@') {
                text = text.replace(&rest[..=at], "");
            }
        }
        text
    }
}

impl RepoSpec {
    /// Accepts a git URL (`https://`, `http://`, `ssh://`, `git://`, `file://`,
    /// `user@host:path`) or a GitHub shorthand `owner/repo`.
    pub fn parse(input: &str) -> Result<RepoSpec, RepoError> {
        let input = input.trim();
        // Error messages show the input without its credentials.
        let shown_input = without_user_info(input);
        if input.is_empty() {
            return Err(RepoError::Empty);
        }
        if input.len() > 2048 {
            return Err(RepoError::TooLong);
        }
        if input.starts_with('-') || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RepoError::NotARepo(shown_input));
        }
        let is_url = ["https://", "http://", "ssh://", "git://", "file://"]
            .iter()
            .any(|scheme| input.starts_with(scheme));
        let is_scp = !is_url && input.contains('@') && input.contains(':');
        let url = if is_url || is_scp {
            input.to_string()
        } else {
            let mut parts = input.split('/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(owner), Some(repo), None)
                    if is_github_part(owner) && is_github_part(repo) =>
                {
                    format!("https://github.com/{owner}/{repo}.git")
                }
                _ => return Err(RepoError::NotARepo(shown_input)),
            }
        };
        let last = url
            .trim_end_matches('/')
            .rsplit(['/', ':'])
            .next()
            .unwrap_or_default();
        let dir = last.strip_suffix(".git").unwrap_or(last).to_string();
        let dir_ok = !dir.is_empty()
            && dir != "."
            && dir != ".."
            && dir
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !dir_ok {
            return Err(RepoError::NoDirectory(shown_input));
        }
        let shown = without_user_info(&url);
        Ok(RepoSpec { url, dir, shown })
    }
}

fn is_github_part(part: &str) -> bool {
    !part.is_empty()
        && part != "."
        && part != ".."
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_shorthand_expands() {
        let spec = RepoSpec::parse("rust-lang/cargo").unwrap();
        assert_eq!(spec.url, "https://github.com/rust-lang/cargo.git");
        assert_eq!(spec.dir, "cargo");
    }

    #[test]
    fn urls_keep_their_form() {
        for (input, dir) in [
            ("https://example.com/a/b.git", "b"),
            ("https://example.com/a/b/", "b"),
            ("git@github.com:o/r.git", "r"),
            ("file:///srv/git/hello.git", "hello"),
            ("ssh://git@host:22/x/y", "y"),
        ] {
            let spec = RepoSpec::parse(input).unwrap();
            assert_eq!(spec.url, input);
            assert_eq!(spec.dir, dir, "{input}");
        }
    }

    #[test]
    fn credentials_are_kept_for_the_clone_but_never_shown() {
        let spec = RepoSpec::parse("https://me:tok%40en@host.example:8443/o/r.git").unwrap();
        assert_eq!(spec.url, "https://me:tok%40en@host.example:8443/o/r.git");
        assert_eq!(spec.shown, "https://host.example:8443/o/r.git");
        assert_eq!(
            spec.redact("fatal: https://me:tok%40en@host.example:8443/o/r.git: me:tok%40en@x"),
            "fatal: https://host.example:8443/o/r.git: x"
        );
        assert_eq!(without_user_info("https://h/a@b"), "https://h/a@b");
        assert_eq!(
            without_user_info("git@github.com:o/r"),
            "git@github.com:o/r"
        );
        let err = RepoSpec::parse("https://me:secret@h/..")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn rejects_junk() {
        for input in [
            "",
            "-uhttps://x",
            "a b/c",
            "justaword",
            "a/b/c",
            "../x",
            "x/..",
            "https://h/..",
        ] {
            assert!(RepoSpec::parse(input).is_err(), "{input:?} accepted");
        }
    }
}
