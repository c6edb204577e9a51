//! Parsing of the `repo` field of a create request.

/// A repository to clone, with the directory it lands in under `/workspace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSpec {
    /// URL handed to `git clone`.
    pub url: String,
    /// Directory name under `/workspace`.
    pub dir: String,
}

impl RepoSpec {
    /// Accepts a git URL (`https://`, `http://`, `ssh://`, `git://`, `file://`,
    /// `user@host:path`) or a GitHub shorthand `owner/repo`.
    pub fn parse(input: &str) -> Result<RepoSpec, String> {
        let input = input.trim();
        if input.is_empty() {
            return Err("repo must not be empty".into());
        }
        if input.len() > 2048 {
            return Err("repo is too long".into());
        }
        if input.starts_with('-') || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("repo {input:?} is not a git URL or owner/repo"));
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
                _ => return Err(format!("repo {input:?} is not a git URL or owner/repo")),
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
            return Err(format!(
                "cannot derive a directory name from repo {input:?}"
            ));
        }
        Ok(RepoSpec { url, dir })
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
