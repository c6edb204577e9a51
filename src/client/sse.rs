//! A small Server-Sent Events parser for `GET /api/events`: lines `id:`,
//! `event:`, `data:`, comments starting with `:`, a blank line ending each
//! event. Every buffer is bounded, so a lying server cannot make the CLI
//! grow: an over-long line or event is an error, and the caller reconnects.

use thiserror::Error;

/// Longest line accepted.
pub const MAX_LINE: usize = 64 * 1024;
/// Largest event (all its `data:` lines together) accepted.
pub const MAX_EVENT: usize = 256 * 1024;

/// One event as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseMessage {
    /// The `id:` field, when sent.
    pub id: Option<String>,
    /// The `event:` field (`message` when absent).
    pub event: String,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// Why a stream is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SseError {
    /// A line went past [`MAX_LINE`].
    #[error("an event-stream line is over {MAX_LINE} bytes")]
    LineTooLong,
    /// An event went past [`MAX_EVENT`].
    #[error("an event is over {MAX_EVENT} bytes")]
    EventTooLarge,
}

/// Incremental parser state.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    current: SseMessage,
    has_data: bool,
}

impl SseParser {
    /// Feeds a chunk; returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseMessage>, SseError> {
        let mut done = Vec::new();
        for &byte in chunk {
            if byte != b'\n' {
                if self.line.len() >= MAX_LINE {
                    return Err(SseError::LineTooLong);
                }
                self.line.push(byte);
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = String::from_utf8_lossy(&self.line).into_owned();
            self.line.clear();
            if let Some(message) = self.line_done(&line)? {
                done.push(message);
            }
        }
        Ok(done)
    }

    fn line_done(&mut self, line: &str) -> Result<Option<SseMessage>, SseError> {
        if line.is_empty() {
            let message = std::mem::take(&mut self.current);
            let had = std::mem::take(&mut self.has_data);
            return Ok(had.then(|| SseMessage {
                event: if message.event.is_empty() {
                    "message".into()
                } else {
                    message.event
                },
                ..message
            }));
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        let size = self.current.data.len() + self.current.event.len() + value.len();
        if size > MAX_EVENT {
            return Err(SseError::EventTooLarge);
        }
        match field {
            "id" => self.current.id = Some(value.to_string()),
            "event" => self.current.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let mut p = SseParser::default();
        let text = b": keep-alive\n\nid: 3\nevent: shed.started\ndata: {\"a\":1}\r\n\nid:4\ndata: x\ndata: y\n\n";
        let mut got = Vec::new();
        for chunk in text.chunks(5) {
            got.extend(p.push(chunk).unwrap());
        }
        assert_eq!(
            got,
            [
                SseMessage {
                    id: Some("3".into()),
                    event: "shed.started".into(),
                    data: "{\"a\":1}".into()
                },
                SseMessage {
                    id: Some("4".into()),
                    event: "message".into(),
                    data: "x\ny".into()
                }
            ]
        );
    }

    #[test]
    fn a_lying_server_cannot_grow_the_buffers() {
        let mut p = SseParser::default();
        let long = vec![b'a'; MAX_LINE + 1];
        assert_eq!(p.push(&long), Err(SseError::LineTooLong));
        let mut p = SseParser::default();
        let line = format!("data: {}\n", "b".repeat(MAX_LINE - 10));
        let mut result = Ok(Vec::new());
        for _ in 0..(MAX_EVENT / MAX_LINE + 2) {
            result = p.push(line.as_bytes());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::EventTooLarge));
    }
}
