//! Hostile text for the byte-for-byte properties (tmux's control mode and
//! the API's two paths to tmux share it, so both face the same pieces).

/// Seed for the generators; `SHED_PROP_SEED` replays a failure.
pub fn prop_seed() -> u64 {
    std::env::var("SHED_PROP_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0x5eed_cafe_f00d_0001)
        // xorshift never leaves the all-zero state.
        .max(1)
}

/// A small deterministic generator (xorshift64*), so a failing case can be
/// replayed from the seed printed with it.
pub struct HostileGen(u64);

impl HostileGen {
    /// A generator starting from `seed` (zero is moved to one).
    pub fn new(seed: u64) -> Self {
        HostileGen(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Text built from what tmux's command parser, its format expander, a
    /// shell or key-name lookup would treat specially, plus Unicode and
    /// every control character but NUL (line breaks only if `breaks`):
    /// maybe a leading `-`, and maybe a trailing `;` or `\;`.
    pub fn hostile(&mut self, breaks: bool) -> String {
        const PIECES: &[&str] = &[
            ";",
            "\\;",
            "\\",
            "\\\\",
            "\\\\;",
            "#{",
            "#(",
            "#[",
            "##",
            "#",
            "#{pane_id}",
            "{",
            "}",
            ")",
            "'",
            "\"",
            "`",
            "$",
            "$(",
            "$HOME",
            "${X}",
            "~",
            "~root",
            "-",
            "--",
            " ",
            "%",
            "%if",
            "%hidden",
            "=",
            ",",
            ":",
            "*",
            "a",
            "Z",
            "0",
            "7",
            "é",
            "漢",
            "🦀",
            "😀",
            "\u{301}",
            "\u{85}",
            "\u{200b}",
            "\u{2028}",
            "C-c",
            "Enter",
            "\\e",
            "\\n",
            "\\001",
            "\\u0041",
        ];
        let mut s = String::new();
        if self.below(3) == 0 {
            s.push('-');
        }
        for _ in 0..self.below(12) + 1 {
            if self.below(4) == 0 {
                // A control character: 0x01..=0x1f or DEL.
                let c = match self.below(33) {
                    32 => '\u{7f}',
                    n => char::from(n as u8 + 1),
                };
                if breaks || (c != '\n' && c != '\r') {
                    s.push(c);
                }
            } else {
                s.push_str(PIECES[self.below(PIECES.len())]);
            }
        }
        match self.below(3) {
            0 => s.push(';'),
            1 => s.push_str("\\;"),
            _ => {}
        }
        s
    }
}
