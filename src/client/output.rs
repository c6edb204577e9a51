//! Human output: aligned tables and relative times.

use chrono::{DateTime, Utc};
use comfy_table::{presets::NOTHING, CellAlignment, ContentArrangement, Table};

/// An aligned, borderless table in the style of `docker ps`.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.to_vec());
    for row in rows {
        // Cells hold server-supplied text: never let it drive the terminal.
        table.add_row(row.iter().map(|cell| clean(cell)).collect::<Vec<_>>());
    }
    for column in table.column_iter_mut() {
        column.set_cell_alignment(CellAlignment::Left);
        column.set_padding((0, 3));
    }
    table
        .lines()
        .map(|line| line.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// "just now", "42s ago", "5m ago", "3h ago", "2d ago", or a date for old times.
pub fn relative_time(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds();
    match secs {
        s if s < 0 => "just now".into(),
        s if s < 5 => "just now".into(),
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s if s < 60 * 86_400 => format!("{}d ago", s / 86_400),
        _ => then.format("%Y-%m-%d").to_string(),
    }
}

/// Collapses a possibly multi-line message to one line.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Prints `message` to stderr as a one-line warning, cleaned of anything a
/// server could use to drive the terminal.
pub fn warn(message: &str) {
    eprintln!("warning: {}", clean(&one_line(message)));
}

/// `text` made safe to print: escape sequences (CSI, OSC, DCS and the
/// like, in their 7-bit and C1 forms) are removed, other control characters
/// (C0, DEL, C1) and bidirectional overrides are dropped, and line breaks and
/// tabs become spaces. Anything a server says goes through this before it
/// reaches a terminal, so a lying server cannot retitle the window, write
/// the clipboard (OSC 52), clear the screen or disguise text.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                Some(' '..='/') => {
                    // nF sequences: intermediates, then one final byte.
                    while chars.next_if(|c| matches!(c, ' '..='/')).is_some() {}
                    chars.next();
                }
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() || is_bidi_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// `value` as pretty JSON in which every control character (C0 but the
/// layout's newlines, DEL, C1) and bidirectional control is written as a
/// `\uXXXX` escape: the same document to a JSON reader, and nothing a
/// terminal would obey when it is printed as is.
pub fn safe_json<T: serde::Serialize>(value: &T) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // serde_json already escapes C0 inside strings, so a raw control
        // character here is one it let through (DEL, C1) or the layout's.
        if (c.is_control() && c != '\n') || is_bidi_control(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Skips a CSI sequence's parameters and intermediates, and its final byte.
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars
        .next_if(|c| matches!(c, '0'..='?' | ' '..='/'))
        .is_some()
    {}
    chars.next_if(|c| matches!(c, '@'..='~'));
}

/// Skips a control string (OSC, DCS, ...) up to BEL or ST.
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => return,
            '\u{1b}' => {
                chars.next_if_eq(&'\\');
                return;
            }
            _ => {}
        }
    }
}

/// Unicode bidirectional controls, which reorder how text is displayed.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn relative_times() {
        let now = Utc::now();
        assert_eq!(relative_time(now, now), "just now");
        assert_eq!(relative_time(now - Duration::seconds(42), now), "42s ago");
        assert_eq!(relative_time(now - Duration::minutes(5), now), "5m ago");
        assert_eq!(relative_time(now - Duration::hours(3), now), "3h ago");
        assert_eq!(relative_time(now - Duration::days(2), now), "2d ago");
        assert_eq!(relative_time(now + Duration::seconds(3), now), "just now");
    }

    #[test]
    fn table_aligns_columns() {
        let out = table(
            &["NAME", "STATUS"],
            vec![
                vec!["a".into(), "running".into()],
                vec!["longer-name".into(), "stopped".into()],
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        let col = lines[0].find("STATUS").unwrap();
        assert_eq!(lines[1].find("running"), Some(col), "{out}");
        assert_eq!(lines[2].find("stopped"), Some(col), "{out}");
    }

    #[test]
    fn safe_json_escapes_what_serde_lets_through() {
        let value = serde_json::json!({"a": "x\u{9b}2J\u{202e}\u{7f}\u{1b}]0;t\u{7}"});
        let text = safe_json(&value).unwrap();
        assert!(
            !text
                .chars()
                .any(|c| (c.is_control() && c != '\n') || is_bidi_control(c)),
            "{text:?}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn one_line_joins() {
        assert_eq!(one_line("a\n\n  b  \nc"), "a; b; c");
    }

    #[test]
    fn clean_removes_escapes_and_controls() {
        let cases = [
            ("plain é 名", "plain é 名"),
            ("\u{1b}[31mred\u{1b}[0m", "red"),
            ("a\u{1b}]0;title\u{7}b", "ab"),
            ("a\u{1b}]52;c;cHduZWQ=\u{1b}\\b", "ab"),
            ("a\u{9b}2Jb\u{9d}x\u{9c}c", "abc"),
            ("a\u{1b}(Bb\u{1b}cc", "abc"),
            ("line\none\ttab\rcr", "line one tab cr"),
            ("nul\u{0}del\u{7f}nel\u{85}", "nuldelnel"),
            ("evil\u{202e}txt.exe", "eviltxt.exe"),
            ("unterminated\u{1b}[", "unterminated"),
            ("\u{1b}", ""),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "{input:?}");
        }
    }
}
