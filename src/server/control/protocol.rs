//! Incremental parsing of tmux control-mode output into typed events.
//!
//! tmux writes one line per notification and frames each command's answer
//! between `%begin TIME NUMBER FLAGS` and `%end`/`%error` with the same three
//! arguments. Nothing of it is trusted: a shed controls the tmux binary and
//! every byte it prints, so lines, reply bodies and names are all bounded and
//! anything unexpected becomes [`Event::Other`] instead of an error.

/// Longest line kept; the rest of a longer line is dropped and the line is
/// marked truncated. One subscription value holds every pane of a shed, so
/// this is sized for [`super::model::MAX_PANES`] full records.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Most body lines kept from one command reply.
pub const MAX_REPLY_LINES: usize = 20_000;

/// Most body bytes kept from one command reply.
pub const MAX_REPLY_BYTES: usize = 4 << 20;

/// Longest notification name or reason kept in [`Event::Other`]/[`Event::Exit`].
const MAX_WORD_BYTES: usize = 256;

/// Capacity a [`LineSplitter`] keeps after a longer line: one buffer per
/// channel lives as long as the channel, so a subscription value of a busy
/// moment must not hold its megabyte for good.
const KEPT_LINE_CAPACITY: usize = 16 * 1024;

/// Splits a byte stream into lines without ever holding more than
/// [`MAX_LINE_BYTES`] of one line.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    overflow: bool,
}

impl LineSplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `data`, calling `emit(line, truncated)` for every completed line
    /// (without its `\n`).
    pub fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        while !data.is_empty() {
            let (part, rest, done) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &data[data.len()..], false),
            };
            data = rest;
            // A whole line within one read, as most are, is passed on
            // without a copy.
            if done && self.buf.is_empty() && !self.overflow {
                let cut = part.len() > MAX_LINE_BYTES;
                emit(&part[..part.len().min(MAX_LINE_BYTES)], cut);
                continue;
            }
            let room = MAX_LINE_BYTES - self.buf.len();
            if part.len() > room {
                self.buf.extend_from_slice(&part[..room]);
                self.overflow = true;
            } else {
                self.buf.extend_from_slice(part);
            }
            if done {
                emit(&self.buf, self.overflow);
                self.overflow = false;
                if self.buf.capacity() > KEPT_LINE_CAPACITY {
                    self.buf = Vec::new();
                } else {
                    self.buf.clear();
                }
            }
        }
    }

    /// Bytes of the unfinished line held now.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// The answer to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// tmux's command number from `%begin`.
    pub number: u64,
    /// `%end` (true) or `%error` (false).
    pub ok: bool,
    /// The body lines, lossily decoded as UTF-8.
    pub body: Vec<String>,
    /// Some body lines or bytes were dropped (see [`MAX_REPLY_LINES`]).
    pub truncated: bool,
}

impl Reply {
    /// The body joined with newlines.
    pub fn text(&self) -> String {
        self.body.join("\n")
    }
}

/// One parsed control-mode line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete command reply.
    Reply(Reply),
    /// `%subscription-changed NAME ... : VALUE`.
    Subscription {
        /// The subscription's name.
        name: String,
        /// Its new value.
        value: String,
        /// The line was longer than [`MAX_LINE_BYTES`] and cut.
        truncated: bool,
    },
    /// `%sessions-changed`: a session was created or destroyed.
    SessionsChanged,
    /// `%session-changed ID NAME`: this client is attached to a session.
    SessionChanged {
        /// The session id (`$N`).
        id: String,
        /// The session name.
        name: String,
    },
    /// `%exit [REASON]`: tmux is closing this client.
    Exit(Option<String>),
    /// `%output` or `%extended-output`, dropped unread.
    Output,
    /// Any other notification or stray line, by its first word.
    Other(String),
}

/// The framing of a reply being collected.
#[derive(Debug)]
struct Block {
    /// `TIME NUMBER FLAGS` exactly as in `%begin`, to match the closing line.
    tag: Vec<u8>,
    number: u64,
    body: Vec<String>,
    bytes: usize,
    truncated: bool,
}

/// Turns lines into [`Event`]s; holds the reply being collected.
#[derive(Debug, Default)]
pub struct Parser {
    block: Option<Block>,
}

impl Parser {
    /// A parser outside any reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// True while inside a `%begin` block.
    pub fn in_reply(&self) -> bool {
        self.block.is_some()
    }

    /// Parses one line (without `\n`); `truncated` is the splitter's flag.
    pub fn line(&mut self, line: &[u8], truncated: bool) -> Option<Event> {
        if let Some(block) = &mut self.block {
            // tmux never nests notifications inside a reply, so only the
            // exact closing tag ends it; a body line that merely looks like
            // `%end` (a pane printing one) stays body.
            let closing = [(&b"%end "[..], true), (&b"%error "[..], false)]
                .into_iter()
                .find(|(p, _)| line.starts_with(p) && line[p.len()..] == block.tag[..]);
            if let Some((_, ok)) = closing {
                let block = self.block.take()?;
                return Some(Event::Reply(Reply {
                    number: block.number,
                    ok,
                    body: block.body,
                    truncated: block.truncated,
                }));
            }
            if truncated
                || block.body.len() >= MAX_REPLY_LINES
                || block.bytes + line.len() > MAX_REPLY_BYTES
            {
                block.truncated = true;
            }
            if block.body.len() < MAX_REPLY_LINES && block.bytes + line.len() <= MAX_REPLY_BYTES {
                block.bytes += line.len();
                block.body.push(String::from_utf8_lossy(line).into_owned());
            }
            return None;
        }
        // Output is by far the most frequent line: recognise it before decoding.
        if line.starts_with(b"%output ") || line.starts_with(b"%extended-output ") {
            return Some(Event::Output);
        }
        if let Some(tag) = line.strip_prefix(b"%begin ") {
            return Some(match parse_tag(tag) {
                Some(number) => {
                    self.block = Some(Block {
                        tag: tag.to_vec(),
                        number,
                        body: Vec::new(),
                        bytes: 0,
                        truncated: false,
                    });
                    return None;
                }
                None => Event::Other("%begin".into()),
            });
        }
        if let Some(rest) = line.strip_prefix(b"%subscription-changed ") {
            return Some(parse_subscription(rest, truncated));
        }
        if line == b"%sessions-changed" {
            return Some(Event::SessionsChanged);
        }
        if let Some(rest) = line.strip_prefix(b"%session-changed ") {
            let rest = String::from_utf8_lossy(rest);
            return Some(match rest.split_once(' ') {
                Some((id, name)) => Event::SessionChanged {
                    id: bounded(id),
                    name: bounded(name),
                },
                None => Event::Other("%session-changed".into()),
            });
        }
        if line == b"%exit" {
            return Some(Event::Exit(None));
        }
        if let Some(reason) = line.strip_prefix(b"%exit ") {
            return Some(Event::Exit(Some(bounded(&String::from_utf8_lossy(reason)))));
        }
        let word = line.split(|&b| b == b' ').next().unwrap_or_default();
        Some(Event::Other(bounded(&String::from_utf8_lossy(word))))
    }
}

/// The command number of a `TIME NUMBER FLAGS` tag, if it is one.
fn parse_tag(tag: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(tag).ok()?;
    let mut parts = text.split(' ');
    let (time, number, flags) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    time.parse::<u64>().ok()?;
    flags.parse::<u64>().ok()?;
    number.parse().ok()
}

/// `NAME $S @W I %P ... : VALUE`; the arguments before the lone `:` never
/// contain spaces, so the first ` : ` after the name starts the value.
fn parse_subscription(rest: &[u8], truncated: bool) -> Event {
    let text = String::from_utf8_lossy(rest);
    let Some((name, args)) = text.split_once(' ') else {
        return Event::Other("%subscription-changed".into());
    };
    let value = match args.find(" : ") {
        Some(i) => &args[i + 3..],
        // An empty value leaves the line ending in " :".
        None if args.ends_with(" :") => "",
        None => return Event::Other("%subscription-changed".into()),
    };
    Event::Subscription {
        name: bounded(name),
        value: value.to_string(),
        truncated,
    }
}

/// `text` cut to [`MAX_WORD_BYTES`] at a character boundary.
fn bounded(text: &str) -> String {
    truncate(text, MAX_WORD_BYTES).to_string()
}

/// The longest prefix of `text` of at most `max` bytes ending on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<Event> {
        let mut splitter = LineSplitter::new();
        let mut parser = Parser::new();
        let mut events = Vec::new();
        splitter.push(input, |line, cut| events.extend(parser.line(line, cut)));
        events
    }

    #[test]
    fn parses_a_recorded_session() {
        // Recorded from tmux 3.3a running the control-mode demonstration script.
        let recorded = b"%begin 1795406178 268 0\n%end 1795406178 268 0\n\
%session-changed $0 _ctl\n%begin 1795406179 273 1\n%end 1795406179 273 1\n\
%subscription-changed all $0 - - - : _ctl|1|bash|0||0/;\n%unlinked-window-add @2\n\
%sessions-changed\n%output %0 \\033[?2004hroot@vm:/tmp# \n\
%begin 1795406185 289 1\n_ctl\ndies\n%end 1795406185 289 1\n\
%begin 1795406281 271 1\nduplicate session: x\n%error 1795406281 271 1\n%exit\n";
        let events = parse_all(recorded);
        assert_eq!(
            events,
            vec![
                Event::Reply(Reply {
                    number: 268,
                    ok: true,
                    body: vec![],
                    truncated: false
                }),
                Event::SessionChanged {
                    id: "$0".into(),
                    name: "_ctl".into()
                },
                Event::Reply(Reply {
                    number: 273,
                    ok: true,
                    body: vec![],
                    truncated: false
                }),
                Event::Subscription {
                    name: "all".into(),
                    value: "_ctl|1|bash|0||0/;".into(),
                    truncated: false
                },
                Event::Other("%unlinked-window-add".into()),
                Event::SessionsChanged,
                Event::Output,
                Event::Reply(Reply {
                    number: 289,
                    ok: true,
                    body: vec!["_ctl".into(), "dies".into()],
                    truncated: false
                }),
                Event::Reply(Reply {
                    number: 271,
                    ok: false,
                    body: vec!["duplicate session: x".into()],
                    truncated: false
                }),
                Event::Exit(None),
            ]
        );
    }

    #[test]
    fn a_body_line_that_looks_like_end_stays_body() {
        let events = parse_all(
            b"%begin 5 7 1\n%end 5 8 1\n%end 5 7 0\n%exit lies\n%end 5 7 1\n%exit server exited\n",
        );
        assert_eq!(
            events,
            vec![
                Event::Reply(Reply {
                    number: 7,
                    ok: true,
                    body: vec![
                        "%end 5 8 1".into(),
                        "%end 5 7 0".into(),
                        "%exit lies".into()
                    ],
                    truncated: false
                }),
                Event::Exit(Some("server exited".into())),
            ]
        );
    }

    #[test]
    fn empty_subscription_values_and_malformed_ones() {
        assert_eq!(
            parse_all(b"%subscription-changed s $1 - - - :\n%subscription-changed s\n%subscription-changed x $1 - - - : a : b\n"),
            vec![
                Event::Subscription { name: "s".into(), value: String::new(), truncated: false },
                Event::Other("%subscription-changed".into()),
                Event::Subscription { name: "x".into(), value: "a : b".into(), truncated: false },
            ]
        );
    }

    #[test]
    fn hostile_lines_never_panic_and_stay_bounded() {
        // Garbage, binary bytes, malformed frames.
        let events = parse_all(
            b"\xff\xfe\x00garbage\n%begin\n%begin x y z\n%begin 1 2\n\n%session-changed\n%\n",
        );
        assert_eq!(events.len(), 7);
        assert!(events.iter().all(|e| matches!(e, Event::Other(_))));

        // An overlong line is cut, and the next line is intact.
        let mut input = b"%subscription-changed s $0 - - - : ".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES * 2));
        input.extend_from_slice(b"\n%sessions-changed\n");
        let events = parse_all(&input);
        match &events[0] {
            Event::Subscription {
                value, truncated, ..
            } => {
                assert!(*truncated);
                assert!(value.len() < MAX_LINE_BYTES);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(events[1], Event::SessionsChanged);

        // A %begin without %end: the body is bounded however long it runs.
        let mut splitter = LineSplitter::new();
        let mut parser = Parser::new();
        let mut got = Vec::new();
        splitter.push(b"%begin 1 1 1\n", |l, c| got.extend(parser.line(l, c)));
        let line = vec![b'y'; 1000];
        for _ in 0..(MAX_REPLY_LINES + 10) {
            splitter.push(&line, |l, c| got.extend(parser.line(l, c)));
            splitter.push(b"\n", |l, c| got.extend(parser.line(l, c)));
        }
        assert!(got.is_empty());
        assert!(parser.in_reply());
        splitter.push(b"%end 1 1 1\n", |l, c| got.extend(parser.line(l, c)));
        match &got[0] {
            Event::Reply(r) => {
                assert!(r.truncated);
                assert!(r.body.len() <= MAX_REPLY_LINES);
                assert!(r.body.iter().map(String::len).sum::<usize>() <= MAX_REPLY_BYTES);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let mut splitter = LineSplitter::new();
        let mut lines = Vec::new();
        for chunk in [&b"%sess"[..], b"ions-changed\n%ex", b"it\n", b"partial"] {
            splitter.push(chunk, |l, _| lines.push(l.to_vec()));
        }
        assert_eq!(
            lines,
            vec![b"%sessions-changed".to_vec(), b"%exit".to_vec()]
        );
        assert_eq!(splitter.pending(), 7);
    }

    #[test]
    fn long_lines_are_joined_and_their_room_given_back() {
        let mut splitter = LineSplitter::new();
        let mut lines = Vec::new();
        let long = vec![b'z'; 3 * KEPT_LINE_CAPACITY];
        splitter.push(&long[..100], |l, c| lines.push((l.len(), c)));
        splitter.push(&long[100..], |l, c| lines.push((l.len(), c)));
        splitter.push(b"\nshort\n", |l, c| lines.push((l.len(), c)));
        assert_eq!(lines, [(long.len(), false), (5, false)]);
        assert_eq!(splitter.pending(), 0);
        assert!(splitter.buf.capacity() <= KEPT_LINE_CAPACITY);
        // An overlong line inside one read is cut as one split across reads is.
        let mut whole = vec![b'w'; MAX_LINE_BYTES + 10];
        whole.push(b'\n');
        lines.clear();
        splitter.push(&whole, |l, c| lines.push((l.len(), c)));
        assert_eq!(lines, [(MAX_LINE_BYTES, true)]);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("é漢", 3), "é");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
