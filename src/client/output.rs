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
        table.add_row(row);
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
    fn one_line_joins() {
        assert_eq!(one_line("a\n\n  b  \nc"), "a; b; c");
    }
}
