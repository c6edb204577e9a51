//! The README's shell blocks, run in order as a new user would type them,
//! so the README cannot drift from what shed does.
//!
//! The commands use the defaults (`127.0.0.1:8080`, SSH on 2222,
//! `~/.config/shed`), so they run in a private network namespace (Docker's
//! socket is a unix socket, still reachable) with `HOME` in a temp dir and
//! the freshly built binaries first on `PATH`, against a real `shed-server
//! serve` on the defaults with the default image `shed-base:latest`.
//!
//! A block that cannot run here is marked in the README by the line
//! `<!-- not run by tests/readme.rs: REASON -->` right before its fence;
//! the test prints each one it skips, with the reason. A command ending in
//! the comment `# → TEXT` must print TEXT.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// The marker before a fence that keeps its block out of the walkthrough.
const SKIP_MARKER: &str = "<!-- not run by tests/readme.rs:";

/// The marker before a fence whose commands need a terminal: each runs in
/// a host tmux pane, where the test types a command and then leaves (`C-b d`
/// for `shed attach`, `exit` otherwise), as a person would.
const TERMINAL_MARKER: &str = "<!-- run by tests/readme.rs in a terminal";

/// The comment that says what a command prints.
const EXPECT_MARKER: &str = "# → ";

/// Longest wait for a command's promised output: it may be a look at
/// something that happens in the background (a pane running a command typed
/// into it), so the command is run again until the output shows.
const EXPECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest one README command may take; the base image build, cached, is
/// the slowest.
const COMMAND_TIMEOUT_SECS: u32 = 300;

/// One ```sh block of the README.
#[derive(Debug)]
struct Block {
    /// 1-based line of its opening fence.
    line: usize,
    /// The section it is in.
    heading: String,
    /// Its commands, continuation lines joined.
    commands: Vec<String>,
    /// Why it is not run, from its marker.
    skip: Option<String>,
    /// Whether it runs at a terminal.
    terminal: bool,
}

fn sh_blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut skip: Option<String> = None;
    let mut terminal = false;
    let mut lines = readme.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        if let Some(h) = line.strip_prefix("## ") {
            heading = h.to_string();
        }
        if let Some(rest) = line.trim().strip_prefix(SKIP_MARKER) {
            let reason = rest.trim().trim_end_matches("-->").trim();
            assert!(
                !reason.is_empty(),
                "README line {}: a skip needs a reason",
                i + 1
            );
            skip = Some(reason.to_string());
            continue;
        }
        if line.trim().starts_with(TERMINAL_MARKER) {
            terminal = true;
            continue;
        }
        let Some(info) = line.strip_prefix("```") else {
            if !line.trim().is_empty() {
                // A marker only covers the fence right after it.
                skip = None;
                terminal = false;
            }
            continue;
        };
        let mut body = Vec::new();
        for (_, inner) in lines.by_ref() {
            if inner.starts_with("```") {
                break;
            }
            body.push(inner);
        }
        if info.trim() == "sh" {
            blocks.push(Block {
                line: i + 1,
                heading: heading.clone(),
                commands: commands(&body),
                skip: skip.take(),
                terminal,
            });
        }
        skip = None;
        terminal = false;
    }
    blocks
}

/// The block's commands: continuation lines joined, comment-only and blank
/// lines dropped (trailing comments stay, bash ignores them).
fn commands(body: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in body {
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            continue;
        }
        current.push_str(line);
        let command = std::mem::take(&mut current);
        let trimmed = command.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            out.push(trimmed.to_string());
        }
    }
    out
}

/// What `command` promises to print, from its `# → TEXT` comment.
fn expected_output(command: &str) -> Option<&str> {
    command
        .split_once(EXPECT_MARKER)
        .map(|(_, text)| text.trim())
        .filter(|text| !text.is_empty())
}

/// A process holding a private network namespace with only loopback up.
struct Namespace {
    holder: Child,
}

impl Namespace {
    fn new() -> Namespace {
        let holder = Command::new("unshare")
            .args([
                "--net",
                "--",
                "sh",
                "-c",
                "ip link set lo up && echo up && exec sleep infinity",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (these tests run as root)");
        let mut ns = Namespace { holder };
        let mut first = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(ns.holder.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(
            first.trim(),
            "up",
            "unshare --net failed (it needs root, as CI's container runs the tests)"
        );
        ns
    }

    /// `program args...` inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/proc/{}/ns/net", self.holder.id()))
            .arg("--")
            .arg(program);
        c
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The walkthrough's world: a temp `HOME`, the namespace, the server, and
/// the sheds the walkthrough creates (unprefixed, so removed by name).
struct Walkthrough {
    home: tempfile::TempDir,
    path: String,
    ns: Namespace,
    server: Option<Child>,
    sheds: BTreeSet<String>,
}

/// `s` as one word for `sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The shed names the run blocks create, by `shed create NAME` or a
/// `{"name":"NAME"}` POST to `/api/sheds`.
fn created_sheds(blocks: &[Block]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for command in blocks
        .iter()
        .filter(|b| b.skip.is_none())
        .flat_map(|b| &b.commands)
    {
        if let Some(rest) = command.strip_prefix("shed create ") {
            names.extend(rest.split_whitespace().next().map(str::to_string));
        }
        if command.contains("localhost:8080/api/sheds -H") {
            if let Some(rest) = command.split(r#"{"name":""#).nth(1) {
                names.extend(rest.split('"').next().map(str::to_string));
            }
        }
    }
    names
}

impl Walkthrough {
    /// Refuses to start when a shed it would create already exists: the
    /// engine is shared and the names are unprefixed.
    fn new(sheds: BTreeSet<String>) -> Walkthrough {
        for name in &sheds {
            let container = format!("shed-{name}");
            let volume = format!("shed-{name}-workspace");
            for (kind, object) in [("container", &container), ("volume", &volume)] {
                assert!(
                    !docker_ok(&[kind, "inspect", object]),
                    "{object} exists on this engine; the README walkthrough creates shed \
                     {name} and will not touch it"
                );
            }
        }
        let bin = Path::new(env!("CARGO_BIN_EXE_shed")).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Walkthrough {
            home: tempfile::tempdir().unwrap(),
            path,
            ns: Namespace::new(),
            server: None,
            sheds,
        }
    }

    fn env(&self, c: &mut Command) {
        c.env("HOME", self.home.path())
            .env("PATH", &self.path)
            .env_remove("SHED_CONFIG")
            .env_remove("SHED_SERVER_CONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .stdin(Stdio::null());
    }

    /// `bash -c COMMAND` in the namespace, from the repository root (the
    /// README's `bash scripts/...` commands are relative to it).
    fn run(&self, command: &str) -> Output {
        let mut c = self.ns.command("timeout");
        c.arg(COMMAND_TIMEOUT_SECS.to_string())
            .args(["bash", "-o", "pipefail", "-c", command])
            .current_dir(repo_root());
        self.env(&mut c);
        c.output().expect("running bash")
    }

    /// `command` at a terminal: a host tmux pane in the namespace. Once a
    /// shell prompt shows, types a command and waits for its output, then
    /// detaches (`shed attach`) or exits, and expects exit status 0.
    fn run_at_terminal(&self, tmux: &HostTmux, pane: &str, command: &str) {
        let line = format!(
            "exec nsenter --net=/proc/{}/ns/net -- env -u SHED_CONFIG -u SHED_SERVER_CONFIG \
             -u XDG_CONFIG_HOME -u XDG_DATA_HOME HOME={} PATH={} bash -c {}",
            self.ns.holder.id(),
            shell_quote(&self.home.path().display().to_string()),
            shell_quote(&self.path),
            // A newline, since the command may end in a comment. tmux can
            // lag in reaping a pane's process, so the status comes from bash.
            shell_quote(&format!("{command}\necho readme-exit=$?"))
        );
        tmux.start(pane, 120, 30, &[], &line);
        let failed = |what: &str, screen: &str| {
            panic!(
                "`{command}` at a terminal: {what}; screen:\n{screen}\nserver log:\n{}",
                self.server_log()
            )
        };
        let prompt = wait_until(Duration::from_secs(30), || {
            let screen = tmux.screen(pane);
            screen.lines().any(|l| l.trim_end().ends_with('$'))
        });
        if !prompt {
            failed("no shell prompt", &tmux.screen(pane));
        }
        // Per pane, since a reattach shows the earlier panes' output again;
        // the arithmetic keeps the typed line from matching its own output.
        let typed = format!("echo readme-$((6*7))-{pane}");
        let expected = format!("readme-42-{pane}");
        tmux.keys(pane, &[&typed, "Enter"]);
        let echoed = wait_until(Duration::from_secs(15), || {
            tmux.screen(pane).lines().any(|l| l.trim() == expected)
        });
        if !echoed {
            failed("the typed command did not run", &tmux.screen(pane));
        }
        if command.starts_with("shed attach") {
            tmux.keys(pane, &["C-b", "d"]);
        } else {
            tmux.keys(pane, &["exit", "Enter"]);
        }
        let mut status = String::new();
        let ended = wait_until(Duration::from_secs(15), || {
            let screen = tmux.screen(pane);
            match screen
                .lines()
                .find_map(|l| l.trim().strip_prefix("readme-exit="))
            {
                Some(s) => {
                    status = s.to_string();
                    true
                }
                None => false,
            }
        });
        if !ended {
            failed("it did not end", &tmux.screen(pane));
        }
        if status != "0" {
            failed(&format!("exit status {status}"), &tmux.screen(pane));
        }
    }

    /// `shed-server serve` on the defaults, as quickstart would leave it.
    fn serve(&mut self) {
        let log = std::fs::File::create(self.home.path().join("server.log")).unwrap();
        let mut c = self.ns.command("shed-server");
        c.arg("serve")
            .current_dir(self.home.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.env(&mut c);
        self.server = Some(c.spawn().expect("starting shed-server"));
        let up = wait_until(Duration::from_secs(30), || {
            self.run("curl -sf localhost:8080/api/health")
                .status
                .success()
        });
        assert!(up, "shed-server did not come up:\n{}", self.server_log());
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Walkthrough {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        // Checked absent at the start, so whatever has these names now is
        // the walkthrough's.
        for name in &self.sheds {
            docker(&["rm", "-f", &format!("shed-{name}")]);
            docker(&["volume", "rm", "-f", &format!("shed-{name}-workspace")]);
        }
    }
}

/// The README's own words, checked for what a walkthrough needs before it
/// touches Docker: every skipped block says why, and the walkthrough runs
/// the quick start.
#[test]
fn every_readme_sh_block_is_run_or_says_why_not() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    assert!(blocks.len() >= 10, "{blocks:#?}");
    let quick = blocks
        .iter()
        .find(|b| b.heading == "Quick start" && b.skip.is_none())
        .expect("a quick start block that runs");
    assert!(
        quick
            .commands
            .iter()
            .any(|c| c.starts_with("shed create demo")),
        "{quick:#?}"
    );
    // The issue's "done when": a detached session, a peek and a reattach,
    // run as written, never skipped.
    let agents: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.heading == "Long-running agents" && b.skip.is_none())
        .collect();
    let runs = |terminal: bool, prefix: &str| {
        agents
            .iter()
            .filter(|b| b.terminal == terminal)
            .flat_map(|b| &b.commands)
            .any(|c| c.starts_with(prefix))
    };
    assert!(runs(false, "shed create myproj"), "{agents:#?}");
    assert!(runs(false, "shed sessions new myproj"), "{agents:#?}");
    assert!(runs(false, "shed sessions peek myproj"), "{agents:#?}");
    assert!(runs(true, "shed attach myproj -S"), "{agents:#?}");
}

#[test]
fn blocks_are_parsed_with_their_markers_and_continuations() {
    let text = "## One\n\
        <!-- not run by tests/readme.rs: needs a remote host -->\n\
        ```sh\nssh box\n```\n\
        ```sh\n# a comment\nshed a \\\n    --flag   # trailing\n\nshed b\n```\n\
        ```toml\nkey = 1\n```\n\
        ## Two\n\
        <!-- run by tests/readme.rs in a terminal: it types -->\n\
        ```sh\nshed attach x\n```\n\
        <!-- not run by tests/readme.rs: only the next fence -->\n\
        text in between\n\
        ```sh\nshed c   # → it\n```\n";
    let blocks = sh_blocks(text);
    assert_eq!(blocks.len(), 4, "{blocks:#?}");
    assert_eq!(blocks[0].skip.as_deref(), Some("needs a remote host"));
    assert_eq!(blocks[1].skip, None);
    assert_eq!(
        blocks[1].commands,
        ["shed a     --flag   # trailing", "shed b"]
    );
    assert_eq!(blocks[2].heading, "Two");
    assert!(blocks[2].terminal && blocks[2].skip.is_none());
    assert!(
        !blocks[3].terminal && blocks[3].skip.is_none(),
        "{blocks:#?}"
    );
    assert_eq!(expected_output(&blocks[3].commands[0]), Some("it"));
    assert_eq!(expected_output(&blocks[1].commands[0]), None);
    assert_eq!(
        created_sheds(&blocks),
        BTreeSet::new(),
        "none of these create a shed"
    );
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    require_docker();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    // The production image quickstart builds, made outside the namespace
    // (a cold build needs Debian's mirror); cached, it takes seconds.
    if !docker_ok(&["image", "inspect", "shed-base:latest"]) {
        let out = Command::new("bash")
            .arg(repo_root().join("docker/build-base-image.sh"))
            .output()
            .expect("running bash");
        assert!(
            out.status.success(),
            "building shed-base: {:?}",
            texts(&out)
        );
    }

    let sheds = created_sheds(&blocks);
    assert!(sheds.contains("demo"), "{sheds:?}");
    let mut walk = Walkthrough::new(sheds);
    walk.serve();
    let tmux = HostTmux::new();

    for block in &blocks {
        if let Some(reason) = &block.skip {
            eprintln!(
                "README line {} ({}): skipped, {reason}",
                block.line, block.heading
            );
            continue;
        }
        if block.terminal {
            eprintln!(
                "README line {} ({}): running at a terminal",
                block.line, block.heading
            );
            for (i, command) in block.commands.iter().enumerate() {
                walk.run_at_terminal(&tmux, &format!("line{}-{i}", block.line), command);
                eprintln!("  ok: {command}");
            }
            continue;
        }
        eprintln!("README line {} ({}): running", block.line, block.heading);
        for command in &block.commands {
            let mut out = walk.run(command);
            let expected = expected_output(command);
            let shows = |out: &Output| {
                expected.is_none_or(|text| String::from_utf8_lossy(&out.stdout).contains(text))
            };
            if out.status.success() && !shows(&out) {
                wait_until(EXPECT_TIMEOUT, || {
                    out = walk.run(command);
                    !out.status.success() || shows(&out)
                });
            }
            let (stdout, stderr) = texts(&out);
            // `curl -s` exits 0 on an HTTP error; its body says so.
            let api_error = command.starts_with("curl") && stdout.contains("\"error\":{");
            assert!(
                out.status.success() && !api_error && shows(&out),
                "README line {} ({}): `{command}` failed ({}, expected output {expected:?}):\n\
                 stdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
                block.line,
                block.heading,
                out.status,
                walk.server_log()
            );
            eprintln!("  ok: {command}");
        }
    }
}
