//! Writing tmux command lines in tmux's own command syntax.
//!
//! A control client sends commands as text that tmux parses like a
//! configuration file line (tmux(1) "PARSING SYNTAX"), not as an argv, so
//! every argument is quoted to come back byte for byte. Facts this relies on,
//! checked against tmux 3.3a by `tests/control.rs`:
//!
//! - Inside single quotes nothing is special: no `\` escapes, no `$` or `~`
//!   expansion, `;`, `#`, `{`, `}` and `"` are plain text.
//! - A single-quoted string cannot hold `'` or a line break, and a
//!   control-mode command must be one line. Those bytes are written in double
//!   quotes as `\ooo` (exactly three octal digits), which tmux turns into
//!   that byte.
//! - Adjacent quoted strings form one argument (`'a'"\047"'b'` is `a'b`), and
//!   `''` is an empty argument.
//! - UTF-8 passes through single quotes unchanged.
//! - Quoting does not hide a leading `-` from option parsing: commands that
//!   take options get `--` before free text.
//! - Arguments that tmux also expands as a format (`new-session -c`, `-s`)
//!   need [`format_literal`] first.

use thiserror::Error;

/// Longest command line sent; tmux has no limit of its own, the bound keeps
/// one request from hogging the channel.
pub const MAX_COMMAND_LINE: usize = 256 * 1024;

/// Why a command could not be written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuoteError {
    /// tmux strings cannot carry NUL.
    #[error("argument contains a NUL byte")]
    Nul,
    /// The line would exceed [`MAX_COMMAND_LINE`].
    #[error("command line is {0} bytes; the limit is {MAX_COMMAND_LINE}")]
    TooLong(usize),
    /// No command given.
    #[error("empty command")]
    Empty,
}

/// Bytes written bare: none of them is special to tmux's parser anywhere in
/// a word, so common arguments stay readable in logs.
fn bare(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_./:@+,-".contains(&b)
}

/// Bytes that need the double-quoted octal form.
fn needs_octal(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == b'\''
}

/// Appends `text` to `out` as one tmux argument.
pub fn push_arg(out: &mut String, text: &str) -> Result<(), QuoteError> {
    if text.as_bytes().contains(&0) {
        return Err(QuoteError::Nul);
    }
    if !text.is_empty() && text.bytes().all(bare) {
        out.push_str(text);
        return Ok(());
    }
    let mut single = false;
    for c in text.chars() {
        // Every byte needing octal is ASCII, so deciding per char is exact.
        if c.is_ascii() && needs_octal(c as u8) {
            if single {
                out.push('\'');
                single = false;
            }
            out.push_str(&format!("\"\\{:03o}\"", c as u8));
        } else {
            if !single {
                out.push('\'');
                single = true;
            }
            out.push(c);
        }
    }
    if single {
        out.push('\'');
    }
    if text.is_empty() {
        out.push_str("''");
    }
    Ok(())
}

/// `text` as one tmux argument.
pub fn arg(text: &str) -> Result<String, QuoteError> {
    let mut out = String::with_capacity(text.len() + 2);
    push_arg(&mut out, text)?;
    Ok(out)
}

/// One command line: the command name and its arguments, each quoted.
pub fn command<S: AsRef<str>>(parts: &[S]) -> Result<String, QuoteError> {
    sequence(&[parts])
}

/// Several commands on one line, separated by ` ; `: tmux runs them in
/// order, stops at the first that fails, and answers each one it ran with
/// its own `%begin` block.
pub fn sequence<S: AsRef<str>, C: AsRef<[S]>>(commands: &[C]) -> Result<String, QuoteError> {
    let mut out = String::new();
    for (i, parts) in commands.iter().enumerate() {
        let parts = parts.as_ref();
        if parts.is_empty() {
            return Err(QuoteError::Empty);
        }
        if i > 0 {
            out.push_str(" ; ");
        }
        for (j, part) in parts.iter().enumerate() {
            if j > 0 {
                out.push(' ');
            }
            push_arg(&mut out, part.as_ref())?;
            if out.len() > MAX_COMMAND_LINE {
                return Err(QuoteError::TooLong(out.len()));
            }
        }
    }
    if out.is_empty() {
        return Err(QuoteError::Empty);
    }
    Ok(out)
}

/// `text` for an argument tmux expands as a format, so `#{...}`, `#(...)`
/// and `#,` stay text. tmux 3.3a reads `##` as `#` except in a run of `#`
/// before `[` (a style), which it leaves alone: such runs are kept, every
/// other `#` is doubled.
pub fn format_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut run = 0usize;
    for c in text.chars() {
        if c == '#' {
            run += 1;
            continue;
        }
        let n = if c == '[' { run } else { run * 2 };
        out.extend(std::iter::repeat_n('#', n));
        run = 0;
        out.push(c);
    }
    out.extend(std::iter::repeat_n('#', run * 2));
    out
}

/// `send-keys -H` arguments for `bytes`: one hex pair per byte, which tmux
/// writes to the pane unchanged, so no text reaches a parser at all.
pub fn hex_keys(bytes: &[u8]) -> Vec<String> {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_bare() {
        assert_eq!(arg("new-session").unwrap(), "new-session");
        assert_eq!(arg("=work:").unwrap(), "'=work:'");
        assert_eq!(arg("-t").unwrap(), "-t");
    }

    #[test]
    fn specials_are_single_quoted() {
        assert_eq!(arg("").unwrap(), "''");
        assert_eq!(arg("a;").unwrap(), "'a;'");
        assert_eq!(arg("\\;").unwrap(), "'\\;'");
        assert_eq!(arg("$HOME ~ #{x}").unwrap(), "'$HOME ~ #{x}'");
        assert_eq!(arg("é漢").unwrap(), "'é漢'");
    }

    #[test]
    fn quotes_and_controls_are_octal() {
        assert_eq!(arg("it's").unwrap(), "'it'\"\\047\"'s'");
        assert_eq!(arg("a\nb\r").unwrap(), "'a'\"\\012\"'b'\"\\015\"");
        assert_eq!(arg("\x7f").unwrap(), "\"\\177\"");
        assert_eq!(arg("a\0"), Err(QuoteError::Nul));
    }

    #[test]
    fn lines_never_contain_a_line_break() {
        let line = command(&["send-keys", "-l", "--", "x\ny\r\x1b;"]).unwrap();
        assert!(!line.contains('\n') && !line.contains('\r'));
        assert_eq!(
            sequence(&[vec!["a", "b;"], vec!["c"]]).unwrap(),
            "a 'b;' ; c"
        );
        assert_eq!(command::<&str>(&[]), Err(QuoteError::Empty));
        let long = "x".repeat(MAX_COMMAND_LINE + 1);
        assert!(matches!(
            command(&["a", long.as_str()]),
            Err(QuoteError::TooLong(_))
        ));
    }

    #[test]
    fn formats_are_escaped() {
        assert_eq!(format_literal("/#{x}#(y);"), "/##{x}##(y);");
        assert_eq!(format_literal("a#[b##[c#"), "a#[b##[c##");
    }

    #[test]
    fn hex_keys_cover_every_byte() {
        assert_eq!(hex_keys("é\n".as_bytes()), ["c3", "a9", "0a"]);
    }
}
