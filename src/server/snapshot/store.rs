//! Where snapshots live and how they are written: `snapshot.json` and the
//! one before it, `snapshot.prev.json`, in a root-owned `0700` directory on
//! the shed's workspace volume, written as root by the scripts below (the
//! server may be remote from Docker's disk, so it goes through the
//! container). Env values given at create may be secrets, hence `0600`.

use crate::api::snapshot::Snapshot;

use super::format::{self, FormatError};

/// The snapshot directory inside a shed, on its workspace volume.
pub const SNAPSHOT_DIR: &str = "/workspace/.shed";
/// The latest snapshot.
pub const CURRENT_FILE: &str = "snapshot.json";
/// The snapshot it replaced.
pub const PREVIOUS_FILE: &str = "snapshot.prev.json";

/// Exit status of [`READ_ALL_SCRIPT`] when there is no snapshot directory.
pub const EXIT_ABSENT: i64 = 10;
/// Exit status of both scripts when the directory is not root's own.
pub const EXIT_UNSAFE: i64 = 11;
/// Exit status of [`WRITE_SCRIPT`] when given nothing to write.
pub const EXIT_EMPTY: i64 = 12;

/// Writes stdin as `$1/snapshot.json`: to a temp file, fsync, then (when
/// `$2` is `rotate`) the current file becomes the previous one, then the
/// rename, then an fsync of the directory. At every moment one complete
/// snapshot is on disk. Refuses empty input.
pub const WRITE_SCRIPT: &str = r#"set -eu
dir=$1
umask 077
if [ ! -e "$dir" ] && [ ! -L "$dir" ]; then mkdir -- "$dir"; fi
cd -P -- "$dir"
if [ "$(pwd -P)" != "$dir" ] || [ ! -O . ]; then echo "unsafe snapshot directory" >&2; exit 11; fi
chmod 0700 .
tmp=snapshot.json.tmp
cat > "$tmp"
if [ ! -s "$tmp" ]; then rm -f -- "$tmp"; echo "refusing an empty snapshot" >&2; exit 12; fi
sync "$tmp" 2>/dev/null || sync
if [ "$2" = rotate ] && [ -f snapshot.json ]; then mv -f -- snapshot.json snapshot.prev.json; fi
mv -f -- "$tmp" snapshot.json
sync . 2>/dev/null || sync
"#;

/// Prints, for each file named after `$1` (the directory) and `$2` (the
/// largest size read), a header line and the file: `absent`, `large SIZE`
/// (not printed), or `file SIZE` and exactly SIZE bytes; so one exec reads
/// both snapshot files. Size and bytes
/// come from one open of the file: a save replaces it by a rename, never
/// in place, and `/dev/stdin` opens that same file again from its start.
///
/// The directory must be the real one (not reached through a symlink) and
/// root's: a file the agent could plant there is not read as root.
pub const READ_ALL_SCRIPT: &str = r#"set -u
d=$1; max=$2; shift 2
cd -P -- "$d" 2>/dev/null || exit 10
if [ "$(pwd -P)" != "$d" ] || [ ! -O . ]; then echo "unsafe snapshot directory" >&2; exit 11; fi
for f in "$@"; do
  if [ ! -f "$f" ]; then echo absent; continue; fi
  { n=$(($(wc -c) + 0))
    if [ "$n" -gt "$max" ]; then echo "large $n"; else echo "file $n"; head -c "$n" /dev/stdin; fi
  } < "$f" || exit 1
done
"#;

/// The argv that reads `files` from `dir` (see [`READ_ALL_SCRIPT`]).
pub fn read_all_command(dir: &str, files: &[&str]) -> Vec<String> {
    let mut cmd: Vec<String> = ["/bin/sh", "-c", READ_ALL_SCRIPT, "shed-snapshot", dir]
        .map(String::from)
        .to_vec();
    cmd.push(format::MAX_SNAPSHOT_BYTES.to_string());
    cmd.extend(files.iter().map(|f| f.to_string()));
    cmd
}

/// Each file of [`READ_ALL_SCRIPT`]'s output, in order, `count` in all; a
/// file the output does not frame as it should is unreadable, and so is
/// every file after it.
pub fn parse_read_all(mut out: &[u8], count: usize) -> Vec<Read> {
    let mut reads = Vec::with_capacity(count);
    while reads.len() < count {
        let Some(eol) = out.iter().position(|&b| b == b'\n') else {
            break;
        };
        let header = String::from_utf8_lossy(&out[..eol]).into_owned();
        out = &out[eol + 1..];
        let mut words = header.split(' ');
        let size = |w: Option<&str>| w.and_then(|w| w.parse::<usize>().ok());
        match (words.next(), size(words.next())) {
            (Some("absent"), None) => reads.push(Read::Absent),
            (Some("large"), Some(_)) => reads.push(Read::too_large()),
            (Some("file"), Some(n)) if n <= out.len() && n <= format::MAX_SNAPSHOT_BYTES => {
                reads.push(Read::from_bytes(&out[..n]));
                out = &out[n..];
            }
            _ => break,
        }
    }
    while reads.len() < count {
        reads.push(Read::Bad(
            "reading it failed: the output was cut short".into(),
        ));
    }
    reads
}

/// The argv that writes stdin as the current snapshot in `dir`, keeping the
/// current one as the previous when `rotate`.
pub fn write_command(dir: &str, rotate: bool) -> Vec<String> {
    let mode = if rotate { "rotate" } else { "keep" };
    ["/bin/sh", "-c", WRITE_SCRIPT, "shed-snapshot", dir, mode]
        .map(String::from)
        .to_vec()
}

/// What one read of a file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// No such file.
    Absent,
    /// A snapshot.
    Ok(Snapshot),
    /// A file that could not be read or parsed, and why.
    Bad(String),
}

impl Read {
    /// The outcome of reading a file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Read {
        match format::parse(bytes) {
            Ok(s) => Read::Ok(s),
            Err(e) => Read::Bad(e.to_string()),
        }
    }

    /// The outcome of a read that stopped at the size limit.
    pub fn too_large() -> Read {
        Read::Bad(FormatError::TooLarge.to_string())
    }
}

/// Both files as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// `snapshot.json`.
    pub current: Read,
    /// `snapshot.prev.json`.
    pub previous: Read,
}

impl Stored {
    /// The snapshot to trust, the file it came from, and a warning for each
    /// file that was unreadable on the way: the current one, else the previous.
    pub fn best(&self) -> (Option<(&'static str, &Snapshot)>, Vec<String>) {
        let mut warnings = Vec::new();
        for (name, read) in [("current", &self.current), ("previous", &self.previous)] {
            match read {
                Read::Ok(s) => return (Some((name, s)), warnings),
                Read::Bad(why) => warnings.push(format!("the {name} snapshot is unusable: {why}")),
                Read::Absent => {}
            }
        }
        (None, warnings)
    }

    /// Whether a write may keep the current file as the previous one: only
    /// when it is good, so a corrupt file never pushes out a good previous.
    pub fn rotate(&self) -> bool {
        matches!(self.current, Read::Ok(_))
    }
}

/// Whether `new`, taken in the container start `new.run`, may replace what
/// is stored. A snapshot from an earlier start that has not been restored
/// yet must not be replaced by the sessions of a fresh start (tmux-continuum
/// #166: an autosave wrote the empty state over the last good save); within
/// one start, sessions that are gone are gone for a reason (killed, ended),
/// so a smaller snapshot is fine.
pub fn may_replace(stored: Option<&Snapshot>, new: &Snapshot) -> Result<(), Unrestored> {
    let Some(old) = stored else {
        return Ok(());
    };
    if old.run == new.run || old.restored_for.as_deref() == Some(new.run.as_str()) {
        return Ok(());
    }
    let missing = old
        .sessions
        .iter()
        .filter(|o| !new.sessions.iter().any(|n| n.name == o.name))
        .count();
    if missing == 0 {
        return Ok(());
    }
    Err(Unrestored {
        saved_at: old.saved_at,
        missing,
    })
}

/// Why [`may_replace`] keeps the stored snapshot: it holds sessions of an
/// earlier container start that no restore has brought back yet.
#[derive(Debug, thiserror::Error)]
#[error("the snapshot saved at {} (an earlier start) holds {missing} session(s) not restored yet", saved_at.to_rfc3339())]
pub struct Unrestored {
    /// When the kept snapshot was saved.
    pub saved_at: chrono::DateTime<chrono::Utc>,
    /// How many of its sessions the new one lacks.
    pub missing: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::snapshot::SNAPSHOT_VERSION;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn snapshot(run: &str, names: &[&str]) -> Snapshot {
        let mut s = format::tests_support::sample();
        s.run = run.into();
        let one = s.sessions[0].clone();
        s.sessions = names
            .iter()
            .map(|n| crate::api::snapshot::SavedSession {
                name: n.to_string(),
                ..one.clone()
            })
            .collect();
        s
    }

    #[test]
    fn a_fresh_start_never_overwrites_an_unrestored_snapshot() {
        let old = snapshot("run1", &["a", "b"]);
        // Same start: sessions that went away went away.
        assert!(may_replace(Some(&old), &snapshot("run1", &[])).is_ok());
        assert!(may_replace(Some(&old), &snapshot("run1", &["a"])).is_ok());
        // A new start before the restore: refused, empty or shrunk.
        assert!(may_replace(Some(&old), &snapshot("run2", &[])).is_err());
        assert!(may_replace(Some(&old), &snapshot("run2", &["a"])).is_err());
        // Nothing lost: fine.
        assert!(may_replace(Some(&old), &snapshot("run2", &["a", "b", "c"])).is_ok());
        // Restored for this start: later saves of this start may shrink it.
        let mut restored = old.clone();
        restored.restored_for = Some("run2".into());
        assert!(may_replace(Some(&restored), &snapshot("run2", &[])).is_ok());
        assert!(may_replace(None, &snapshot("run2", &[])).is_ok());
        assert_eq!(old.version, SNAPSHOT_VERSION);
    }

    #[test]
    fn the_best_file_is_the_current_one_else_the_previous_with_a_warning() {
        let good = snapshot("r", &["a"]);
        let stored = Stored {
            current: Read::from_bytes(b"{garbage"),
            previous: Read::Ok(good.clone()),
        };
        let (best, warnings) = stored.best();
        assert_eq!(best, Some(("previous", &good)));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("current"), "{warnings:?}");
        assert!(
            !stored.rotate(),
            "a corrupt file must not push out the good previous one"
        );
        let stored = Stored {
            current: Read::Ok(good.clone()),
            previous: Read::Absent,
        };
        assert_eq!(stored.best(), (Some(("current", &good)), vec![]));
        assert!(stored.rotate());
    }

    fn run(cmd: Vec<String>, input: &[u8]) -> (i64, Vec<u8>) {
        let mut child = Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.code().unwrap_or(-1) as i64, out.stdout)
    }

    /// Reads one file with the read-all script: its status and bytes.
    fn read_command(dir: &str, file: &str) -> Vec<String> {
        read_all_command(dir, &[file])
    }

    /// The bytes of the one file a read-all output frames.
    fn framed(out: &[u8]) -> Vec<u8> {
        let eol = out.iter().position(|&b| b == b'\n').unwrap();
        let header = std::str::from_utf8(&out[..eol]).unwrap();
        let n: usize = header.strip_prefix("file ").unwrap().parse().unwrap();
        assert_eq!(out.len(), eol + 1 + n, "{header}");
        out[eol + 1..].to_vec()
    }

    #[test]
    fn one_read_frames_every_file_and_a_cut_output_is_unreadable() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap().join("shed");
        let dir = dir.to_str().unwrap();
        let good = format::to_bytes(&mut snapshot("r", &["a"]));
        assert_eq!(run(write_command(dir, true), &good).0, 0);
        assert_eq!(run(write_command(dir, true), b"{junk\nfile 3\n").0, 0);
        let (code, out) = run(
            read_all_command(dir, &[CURRENT_FILE, PREVIOUS_FILE, "none.json"]),
            b"",
        );
        assert_eq!(code, 0);
        let reads = parse_read_all(&out, 3);
        assert!(matches!(&reads[0], Read::Bad(_)), "{reads:?}");
        assert!(
            matches!(&reads[1], Read::Ok(s) if s.run == "r" && s.sessions[0].name == "a"),
            "{reads:?}"
        );
        assert_eq!(reads[2], Read::Absent);
        // Cut short: what cannot be framed is unreadable, not absent.
        let reads = parse_read_all(&out[..out.len() - 40], 3);
        assert!(matches!(&reads[1], Read::Bad(_)), "{reads:?}");
        assert!(matches!(&reads[2], Read::Bad(_)), "{reads:?}");
        assert_eq!(
            parse_read_all(b"large 99999999999\nabsent\n", 2),
            vec![Read::too_large(), Read::Absent]
        );
    }

    #[test]
    fn the_scripts_write_atomically_keep_the_previous_and_refuse_traps() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let dir = base.join("shed");
        let dir = dir.to_str().unwrap();
        assert_eq!(run(read_command(dir, CURRENT_FILE), b"").0, EXIT_ABSENT);
        assert_eq!(run(write_command(dir, true), b"one").0, 0);
        assert_eq!(framed(&run(read_command(dir, CURRENT_FILE), b"").1), b"one");
        assert_eq!(run(read_command(dir, PREVIOUS_FILE), b"").1, b"absent\n");
        assert_eq!(run(write_command(dir, true), b"two").0, 0);
        assert_eq!(framed(&run(read_command(dir, CURRENT_FILE), b"").1), b"two");
        assert_eq!(
            framed(&run(read_command(dir, PREVIOUS_FILE), b"").1),
            b"one"
        );
        // Without rotation the previous file stays.
        assert_eq!(run(write_command(dir, false), b"three").0, 0);
        assert_eq!(
            framed(&run(read_command(dir, PREVIOUS_FILE), b"").1),
            b"one"
        );
        // Empty input never replaces anything.
        assert_eq!(run(write_command(dir, true), b"").0, EXIT_EMPTY);
        assert_eq!(
            framed(&run(read_command(dir, CURRENT_FILE), b"").1),
            b"three"
        );
        let mode = std::fs::metadata(format!("{dir}/snapshot.json")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temp file left: {names:?}");
        // A symlink planted where the directory goes is neither followed
        // for writing nor for reading.
        let elsewhere = base.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("snapshot.json"), "secret").unwrap();
        let link = base.join("link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let link = link.to_str().unwrap();
        assert_eq!(run(write_command(link, true), b"x").0, EXIT_UNSAFE);
        assert_eq!(run(read_command(link, CURRENT_FILE), b"").0, EXIT_UNSAFE);
        assert_eq!(
            std::fs::read(elsewhere.join("snapshot.json")).unwrap(),
            b"secret"
        );
    }
}
