//! The CLI's arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Persistent Docker workspaces ("sheds") for long-running coding agents.
#[derive(Debug, Parser)]
#[command(after_help = "Examples:
  shed server add 127.0.0.1 --identity ~/.ssh/id_ed25519
  shed create demo --repo owner/repo
  shed sessions new demo agent -- claude
  shed sessions peek demo agent --follow
  shed attach demo -S agent

Exit codes: 0 success, 1 error, 2 bad usage, 3 partial result (a server did not answer).
`shed inbox` and `shed wait` define their own; see their --help.")]
#[command(name = "shed", version, propagate_version = true)]
pub struct Cli {
    /// Config file [default: ~/.config/shed/config.toml].
    #[arg(long, global = true, env = "SHED_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Server to use, by its configured name.
    #[arg(short = 's', long = "server", global = true, value_name = "NAME")]
    pub server: Option<String>,
    /// Log what shed does (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the servers this CLI knows.
    #[command(subcommand)]
    Server(ServerCommand),
    /// Create a shed and start it.
    #[command(after_help = "Examples:
  shed create demo
  shed create demo --repo owner/repo        # cloned into /workspace/repo
  shed -s box create demo --image my-agent:latest
  shed create demo --idle-stop-after 30m    # stop itself after 30 idle minutes
  shed create demo --idle-stop-after off    # never stop itself")]
    Create {
        /// Shed name: lowercase letters, digits and '-'.
        name: String,
        /// Image to use instead of the server's default.
        #[arg(long)]
        image: Option<String>,
        /// Git URL or GitHub owner/repo to clone into /workspace.
        #[arg(long)]
        repo: Option<String>,
        /// Stop the shed once no session has been working, and no client
        /// attached, for this long (seconds, or 90s, 30m, 2h, 1d; off never),
        /// instead of the server's idle_stop_after.
        #[arg(long, value_name = "DURATION", value_parser = crate::api::idle::parse_idle_stop_after)]
        idle_stop_after: Option<u64>,
    },
    /// List sheds.
    #[command(visible_alias = "ls")]
    List {
        /// List every configured server, not just one.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a stopped shed.
    Start {
        /// Shed name.
        name: String,
    },
    /// Stop a running shed; its workspace is kept.
    Stop {
        /// Shed name.
        name: String,
    },
    /// Delete a shed and, unless --keep-volume, its workspace.
    #[command(visible_alias = "rm")]
    Delete {
        /// Shed name.
        name: String,
        /// Keep the workspace volume; a later create of the same name reuses it.
        #[arg(long)]
        keep_volume: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
    /// Open an interactive shell in a shed (through the SSH gateway).
    Console {
        /// Shed name.
        name: String,
    },
    /// Run a command in a shed; its output streams back and its exit code is shed's.
    #[command(after_help = "Examples:
  shed exec demo -- make test
  shed exec demo -- sh -c 'cd /workspace/app && cargo build'
  shed exec demo --session agent -- git status   # visibly, in session agent")]
    Exec {
        /// Shed name.
        name: String,
        /// Run inside this tmux session, visibly to anyone attached (in a new window).
        #[arg(long, value_name = "SESSION")]
        session: Option<String>,
        /// Command and arguments, each passed through exactly (after `--`).
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Attach to a tmux session in a shed, creating it if needed.
    #[command(after_help = "Examples:
  shed attach demo                  # session \"default\", created if missing
  shed attach demo -S agent --existing
  shed attach demo -S scratch --new --cwd /tmp

C-b d detaches; whatever runs in the session keeps running.")]
    Attach {
        /// Shed name.
        name: String,
        /// Session name.
        #[arg(short = 'S', long = "session", default_value = "default")]
        session: String,
        /// Fail if the session already exists, instead of attaching to it.
        #[arg(long, conflicts_with = "existing")]
        new: bool,
        /// Fail if the session does not exist, instead of creating it.
        #[arg(long)]
        existing: bool,
        /// Working directory for a new session.
        #[arg(long, default_value = "/workspace", value_name = "DIR")]
        cwd: String,
    },
    /// Manage `Host shed-NAME` entries in ~/.ssh/config for VS Code, Cursor and plain ssh.
    SshConfig {
        /// Only this shed [default: every shed on every server].
        name: Option<String>,
        /// Write the entries into ~/.ssh/config.
        #[arg(long, conflicts_with_all = ["uninstall", "dry_run"])]
        install: bool,
        /// Remove the entries (all of shed's, without NAME).
        #[arg(long, conflicts_with = "dry_run")]
        uninstall: bool,
        /// Print what would be written, change nothing (the default).
        #[arg(long)]
        dry_run: bool,
    },
    /// List tmux sessions, or manage one (kill, new, peek, send).
    #[command(after_help = "Examples:
  shed sessions                     # the current server's sessions
  shed sessions --all --json
  shed sessions demo                # one shed's
  shed sessions --shed new          # a shed named like a subcommand
  shed sessions new demo agent -- claude --resume
  shed sessions peek demo agent -n 20 --follow
  shed sessions send demo agent 'yes, go ahead' --enter")]
    #[command(args_conflicts_with_subcommands = true)]
    Sessions {
        /// What to do; without one, list.
        #[command(subcommand)]
        action: Option<SessionsCommand>,
        /// Only this shed's sessions.
        shed: Option<String>,
        /// Only this shed's sessions, for a shed named like a subcommand
        /// (`new`, `peek`, `send`, `kill`, `restore`, `help`).
        #[arg(long = "shed", value_name = "SHED", conflicts_with = "shed")]
        shed_flag: Option<String>,
        /// Every configured server, queried concurrently.
        #[arg(long)]
        all: bool,
        /// Print JSON: {"sessions":[...],"errors":[...]}.
        #[arg(long)]
        json: bool,
        /// Keep a live table, fed by the servers' event streams, until Ctrl-C.
        #[arg(long, conflicts_with_all = ["json", "shed"])]
        watch: bool,
    },
    /// Install the hooks that make agents report their state to shed.
    #[command(subcommand)]
    Hooks(HooksCommand),
    /// List every session whose agent waits for you, on every configured server.
    #[command(
        after_help = "Rows: waiting (longest wait first), then exited, then idle; working
sessions are left out. Each row shows how long it has been in its state,
the last lines of its screen (waiting and exited rows) and the command
that attaches to it.

Examples:
  shed inbox
  shed inbox --json
  shed -s box inbox                 # one server only
  shed inbox -q && echo 'an agent needs you'

Exit codes: 0 at least one session waits (even if a server failed; it is
named on stderr); 1 nothing waits and every server answered; 2 bad usage,
or no server answered at all; 3 nothing waits among the answers, but a
server or shed did not answer, so something may."
    )]
    Inbox {
        /// Print JSON: {"sessions":[...],"errors":[...]}.
        #[arg(long)]
        json: bool,
        /// Print nothing; the exit code says whether anything waits.
        #[arg(short, long, conflicts_with = "json")]
        quiet: bool,
    },
    /// Block until a session's agent reaches a state.
    #[command(
        after_help = "Follows the server's event stream (reconnecting, and resuming where it
left off, if it drops), so it returns as soon as the state is reported.

Examples:
  shed wait demo agent --for waiting
  shed wait demo agent --for any --timeout 30m
  shed wait demo agent --for exited --timeout 90   # plain seconds

DURATION: 30s, 5m, 1h30m, 500ms, or plain seconds.

Exit codes: 0 the state was reached (or already held); 124 timeout;
1 the session is gone (or another error); 2 bad usage."
    )]
    Wait {
        /// Shed name.
        shed: String,
        /// Session name.
        session: String,
        /// The state to wait for; `any` means any change from the current one.
        #[arg(long = "for", value_enum, value_name = "STATE")]
        state: WaitFor,
        /// Give up after this long (exit 124).
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        timeout: Option<Duration>,
    },
    /// A live view of every session and its agent, with desktop notifications if asked.
    #[command(after_help = "Examples:
  shed watch
  shed watch --all --notify

--notify raises a desktop notification when a session's agent starts
waiting or exits (once per change): notify-send where it is on PATH,
osascript on macOS, otherwise the terminal's own (OSC 777 and OSC 9) and
its bell. Ctrl-C stops the watch (exit 0).")]
    Watch {
        /// Every configured server, not just one.
        #[arg(long)]
        all: bool,
        /// Notify when an agent starts waiting or exits.
        #[arg(long)]
        notify: bool,
    },
    /// Serve the web dashboard for every configured server on this machine.
    #[command(after_help = "Examples:
  shed ui                 # http://127.0.0.1:8765/
  shed ui --open          # and open it in the browser
  shed ui --port 0        # any free port (the URL is printed)
  shed -s box ui          # one server only

The page lists every configured server's sheds and sessions, with the
agents waiting for an answer on top, and opens terminals in the browser.
shed ui relays each server's API with the token and pinned certificate in
the config, so no secret reaches the browser. It listens on 127.0.0.1 only,
and refuses requests from other web sites. Ctrl-C stops it.")]
    Ui {
        /// Port on 127.0.0.1; 0 picks a free one.
        #[arg(long, default_value_t = crate::client::ui::DEFAULT_PORT)]
        port: u16,
        /// Open the page in the default browser.
        #[arg(long)]
        open: bool,
    },
    /// Print a shell completion script.
    Completions {
        /// Shell to generate for.
        shell: clap_complete::Shell,
    },
}

/// `shed sessions ...`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Kill the session with exactly this name.
    Kill {
        /// Shed name.
        shed: String,
        /// Session name.
        session: String,
    },
    /// Start a detached session, e.g. an agent to walk away from.
    New {
        /// Shed name.
        shed: String,
        /// Session name.
        session: String,
        /// Working directory [default: /workspace].
        #[arg(long, value_name = "DIR")]
        cwd: Option<String>,
        /// What the session runs when it comes back after its shed restarts:
        /// shell, rerun, resume (an agent's conversation) or ask [default:
        /// shell without a command, resume for an agent, ask otherwise].
        #[arg(long, value_name = "POLICY", value_parser = ["shell", "rerun", "resume", "ask"])]
        restore: Option<String>,
        /// Command and arguments [default: a shell].
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
        /// Then block until its agent reaches this state (as `shed wait` does).
        #[arg(long, value_enum, value_name = "STATE")]
        wait_for: Option<WaitFor>,
    },
    /// Show why a session's agent is in its state: the source that decided,
    /// the rule and screen line, and the times.
    Explain {
        /// Shed name.
        shed: String,
        /// Session name.
        session: String,
        /// Print the server's explanation as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Recreate the saved sessions a shed runs without, and say what was done.
    Restore {
        /// Shed name.
        shed: String,
        /// Only say what would be restored.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a session's recent output, scrollback included.
    Peek {
        /// Shed name.
        shed: String,
        /// Session name.
        session: String,
        /// How many lines.
        #[arg(short = 'n', long, default_value_t = 40)]
        lines: usize,
        /// Keep printing new output until Ctrl-C.
        #[arg(short, long)]
        follow: bool,
    },
    /// Type text into a session (literally: key names are not interpreted).
    Send {
        /// Shed name.
        shed: String,
        /// Session name.
        session: String,
        /// The text.
        text: String,
        /// Press Enter after the text.
        #[arg(long)]
        enter: bool,
    },
}

/// `shed hooks ...`.
#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// Write `shed-hook` and the agents' hook configurations into a shed, at
    /// system paths; a file that exists and is not shed's is left untouched.
    #[command(after_help = "Examples:
  shed hooks install demo                   # claude, codex and gemini
  shed hooks install demo --agent claude
  shed hooks install demo --json

See docs/hooks.md for what is written where.")]
    Install {
        /// Shed name.
        name: String,
        /// Only this agent's hooks (repeatable): claude, codex or gemini.
        #[arg(long = "agent", value_name = "NAME", value_parser = parse_hook_agent)]
        agents: Vec<crate::api::hooks::HookAgent>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_hook_agent(
    text: &str,
) -> Result<crate::api::hooks::HookAgent, crate::api::hooks::UnknownHookAgent> {
    text.parse()
}

/// What `shed wait --for` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WaitFor {
    /// The agent needs its user.
    Waiting,
    /// The agent is done with its turn.
    Idle,
    /// The agent's program ended.
    Exited,
    /// The agent is busy.
    Working,
    /// Any change of state from the current one.
    Any,
}

/// Longest duration accepted, so arithmetic on deadlines cannot overflow.
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// A duration `shed` cannot read (see [`parse_duration`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: use e.g. 30s, 5m, 1h30m or plain seconds")]
pub struct InvalidDuration(pub String);

/// Parses `30s`, `5m`, `1h30m`, `500ms`, `2d` or plain seconds (`90`).
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let bad = || InvalidDuration(text.to_string());
    let text = text.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = text.parse().map_err(|_| bad())?;
        let d = Duration::from_secs(secs);
        return if d <= MAX_DURATION { Ok(d) } else { Err(bad()) };
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 12 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let part = match &rest[..unit] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            _ => return Err(bad()),
        };
        rest = &rest[unit..];
        total = total.saturating_add(part);
        if total > MAX_DURATION {
            return Err(bad());
        }
    }
    Ok(total)
}

/// `shed server ...`.
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Add a server; its name and SSH port are read from its /api/info.
    ///
    /// HOST is a host name or IP address (https, or plain http for a loopback
    /// address), or a URL: https://HOST[:PORT] or http://HOST[:PORT]. The SSH
    /// host key and the TLS certificate are pinned by fingerprint: confirm
    /// them at the prompt, or pass --fingerprint and --tls-fingerprint.
    #[command(after_help = "Examples:
  shed server add 127.0.0.1 --identity ~/.ssh/id_ed25519
  shed server add https://box.example.com:8080 --name box --token TOKEN \\
      --tls-fingerprint SHA256:... --fingerprint SHA256:... --identity ~/.ssh/id_ed25519")]
    Add {
        /// Host name, IP address, or http(s)://HOST[:PORT].
        host: String,
        /// Local name for the server [default: the server's own name].
        #[arg(long)]
        name: Option<String>,
        /// HTTP API port (a port in the URL wins).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// API token, if the server requires one.
        #[arg(long)]
        token: Option<String>,
        /// SSH private key to use with this server.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// Expected SSH host key fingerprint (`shed-server host-key` prints it); pins without asking.
        #[arg(long, value_name = "SHA256:...")]
        fingerprint: Option<String>,
        /// Expected TLS certificate fingerprint (https); pins without asking.
        #[arg(long, value_name = "SHA256:...")]
        tls_fingerprint: Option<String>,
        /// Replace a different host key already known for this host and port.
        #[arg(long)]
        replace_host_key: bool,
        /// Allow sending the token over plain http:// to a host that is not loopback.
        #[arg(long)]
        allow_plain_http: bool,
    },
    /// List configured servers.
    #[command(visible_alias = "ls")]
    List,
    /// Forget a server.
    #[command(visible_alias = "rm")]
    Remove {
        /// Server name.
        name: String,
    },
    /// Make a server the default.
    SetDefault {
        /// Server name.
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn main_commands_show_examples_in_help() {
        let cli = Cli::command();
        assert!(cli.get_after_help().is_some());
        for path in [
            &["create"][..],
            &["exec"],
            &["attach"],
            &["sessions"],
            &["server", "add"],
            &["inbox"],
            &["wait"],
            &["watch"],
        ] {
            let mut command = &cli;
            for name in path {
                command = command.find_subcommand(name).expect("subcommand");
            }
            let help = command.get_after_help().map(|h| h.to_string());
            assert!(
                help.as_deref().is_some_and(|h| h.contains("Examples:")),
                "{path:?}"
            );
        }
    }

    #[test]
    fn durations_parse() {
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("90"), Ok(secs(90)));
        assert_eq!(parse_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_duration("5m"), Ok(secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(secs(172_800)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in [
            "",
            "m",
            "5x",
            "1h30",
            "-5s",
            "1.5s",
            "99999999999999s",
            "400d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_duration("5x").unwrap_err().to_string(),
            "invalid duration \"5x\": use e.g. 30s, 5m, 1h30m or plain seconds"
        );
    }

    #[test]
    fn create_takes_an_idle_stop_after() {
        let parse = |value: &str| {
            Cli::try_parse_from(["shed", "create", "demo", "--idle-stop-after", value]).map(|cli| {
                match cli.command {
                    Command::Create {
                        idle_stop_after, ..
                    } => idle_stop_after,
                    other => panic!("{other:?}"),
                }
            })
        };
        assert_eq!(parse("1h30m").unwrap(), Some(5400));
        assert_eq!(parse("off").unwrap(), Some(0));
        assert!(parse("soon").is_err());
        assert!(parse("31d").is_err());
        let cli = Cli::try_parse_from(["shed", "create", "demo"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Create {
                idle_stop_after: None,
                ..
            }
        ));
    }

    #[test]
    fn agent_commands_parse() {
        let cli = Cli::try_parse_from([
            "shed",
            "wait",
            "demo",
            "agent",
            "--for",
            "waiting",
            "--timeout",
            "1h30m",
        ])
        .unwrap();
        match cli.command {
            Command::Wait { state, timeout, .. } => {
                assert_eq!(state, WaitFor::Waiting);
                assert_eq!(timeout, Some(Duration::from_secs(5400)));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["shed", "wait", "demo", "agent", "--for", "nap"]).is_err());
        let cli = Cli::try_parse_from(["shed", "watch", "--all", "--notify"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Watch {
                all: true,
                notify: true
            }
        ));
        let cli = Cli::try_parse_from(["shed", "sessions", "explain", "demo", "agent"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Sessions {
                action: Some(SessionsCommand::Explain { .. }),
                ..
            }
        ));
        assert!(Cli::try_parse_from(["shed", "inbox", "--json", "-q"]).is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_keeps_arguments_verbatim() {
        let cli = Cli::try_parse_from([
            "shed", "exec", "demo", "--", "printf", "%s\n", "a b", "-c", "c;d",
        ])
        .unwrap();
        match cli.command {
            Command::Exec { name, command, .. } => {
                assert_eq!(name, "demo");
                assert_eq!(command, ["printf", "%s\n", "a b", "-c", "c;d"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sessions_list_and_subcommands_parse() {
        let cli = Cli::try_parse_from(["shed", "sessions", "--all", "--json"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Sessions {
                action: None,
                shed: None,
                shed_flag: None,
                all: true,
                json: true,
                watch: false
            }
        ));
        let cli = Cli::try_parse_from(["shed", "sessions", "myproj"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Sessions {
                action: None,
                shed: Some(_),
                ..
            }
        ));
        // A shed named like a subcommand is reachable with --shed.
        for name in ["new", "peek", "send", "kill", "help", "restore", "explain"] {
            let cli = Cli::try_parse_from(["shed", "sessions", "--shed", name]).unwrap();
            assert!(
                matches!(
                    cli.command,
                    Command::Sessions {
                        action: None,
                        shed: None,
                        shed_flag: Some(ref s),
                        ..
                    } if s == name
                ),
                "{name}"
            );
        }
        let cli = Cli::try_parse_from(["shed", "sessions", "kill", "myproj", "debug"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Sessions {
                action: Some(SessionsCommand::Kill { .. }),
                ..
            }
        ));
        let cli = Cli::try_parse_from([
            "shed", "sessions", "new", "p", "agent", "--", "claude", "--resume",
        ])
        .unwrap();
        match cli.command {
            Command::Sessions {
                action: Some(SessionsCommand::New { command, .. }),
                ..
            } => {
                assert_eq!(command, ["claude", "--resume"])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["shed", "list", "-s", "b", "--all"]).unwrap();
        assert_eq!(cli.server.as_deref(), Some("b"));
        assert!(matches!(
            cli.command,
            Command::List {
                all: true,
                json: false
            }
        ));
    }
}
