//! shed-server: parses arguments, sets up logging, and runs the server.

use std::io::{IsTerminal, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shed::server::config::{ConfigSource, ServerConfig, EXAMPLE_CONFIG};
use shed::server::install::{self, UnitSpec, UNIT_NAME};
use shed::server::ssh::keys;

/// Serves sheds (persistent Docker workspaces) over HTTP and SSH.
#[derive(Parser)]
#[command(
    name = "shed-server",
    version,
    after_help = "Examples:
  shed-server serve                              # 127.0.0.1:8080, SSH gateway on 2222
  shed-server serve --bind 0.0.0.0 --port 9090   # a public bind needs api_token in the config
  shed-server keys add ~/.ssh/id_ed25519.pub     # let a key into the SSH gateway
  shed-server host-key                           # the gateway's fingerprint, for `shed server add`
  shed-server default-config > server.toml       # a commented config to edit
  sudo shed-server install --config /etc/shed/server.toml   # run it as a systemd service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Config file; default: $SHED_SERVER_CONFIG, ./server.toml,
        /// ~/.config/shed/server.toml, /etc/shed/server.toml, then built-in defaults.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Listen address, instead of the config's `bind`.
        #[arg(long, value_name = "ADDR")]
        bind: Option<IpAddr>,
        /// HTTP API port, instead of the config's `http_port` (0: any free port).
        #[arg(long, value_name = "PORT")]
        port: Option<u16>,
        /// SSH gateway port, instead of the config's `ssh_port` (0: any free port).
        #[arg(long, value_name = "PORT")]
        ssh_port: Option<u16>,
    },
    /// Install a systemd unit that runs `serve` (a system unit as root, else
    /// a user unit), enable and start it.
    Install {
        /// Config file the unit serves with; default: the one `serve` would
        /// find now. Stored as an absolute path.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// User the system unit runs as (default: root). Not for user units.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Print the unit and where it would go; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop, disable and remove the unit `install` wrote.
    Uninstall,
    /// Print a commented example config.
    DefaultConfig,
    /// Manage the keys the SSH gateway accepts (its authorized_keys file).
    Keys {
        /// Config file, found as for `serve`.
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Print the SSH host key's fingerprint (SHA256:...), creating the key
    /// in data_dir as `serve` would; with --tls, the HTTPS certificate's.
    HostKey {
        /// Config file, found as for `serve`.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the fingerprint of the API's TLS certificate instead, for
        /// `shed server add https://... --tls-fingerprint`.
        #[arg(long)]
        tls: bool,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Add a public key: a key line, a .pub file, or `-` for standard input.
    Add {
        /// `ssh-ed25519 AAAA... comment`, a file path, or `-`.
        key: String,
    },
    /// List the keys: fingerprint, type, comment and options.
    List,
    /// Remove a key by fingerprint (SHA256:...) or by its unique comment.
    Remove {
        /// Fingerprint or comment.
        key: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::DefaultConfig => {
            print!("{EXAMPLE_CONFIG}");
            Ok(())
        }
        Command::Serve {
            config,
            bind,
            port,
            ssh_port,
        } => {
            init_logging();
            run(
                config,
                Overrides {
                    bind,
                    port,
                    ssh_port,
                },
            )
        }
        Command::Install {
            config,
            user,
            dry_run,
        } => install(config, user, dry_run),
        Command::Uninstall => uninstall(),
        Command::Keys { config, action } => manage_keys(config, action),
        Command::HostKey { config, tls } => host_key(config, tls),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shed-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `serve` flags that replace config values.
struct Overrides {
    bind: Option<IpAddr>,
    port: Option<u16>,
    ssh_port: Option<u16>,
}

fn run(config: Option<PathBuf>, overrides: Overrides) -> anyhow::Result<()> {
    let (mut config, source) = ServerConfig::load(config.as_deref())?;
    if let Some(bind) = overrides.bind {
        config.bind = bind;
    }
    if let Some(port) = overrides.port {
        config.http_port = port;
    }
    if let Some(port) = overrides.ssh_port {
        config.ssh_port = port;
    }
    // A flag must not get around a check the file would have failed, such as
    // a public bind without a token.
    let origin = match &source {
        ConfigSource::File(path) => path.clone(),
        ConfigSource::Defaults => PathBuf::from("<defaults>"),
    };
    config.check(&origin)?;
    match &source {
        ConfigSource::File(path) => tracing::info!(path = %path.display(), "loaded config"),
        ConfigSource::Defaults => tracing::info!("no config file found; using built-in defaults"),
    }
    shed::server::raise_fd_limit();
    shed::server::tune_allocator();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(shed::server::serve(config))
}

fn host_key(config: Option<PathBuf>, tls: bool) -> anyhow::Result<()> {
    let (config, _) = ServerConfig::load(config.as_deref())?;
    if tls {
        if !config.tls_enabled() {
            anyhow::bail!("this server serves plain HTTP (tls = \"off\", or \"auto\" on a loopback bind); there is no certificate to pin");
        }
        println!("{}", shed::server::tls::certificate_fingerprint(&config)?);
        return Ok(());
    }
    let key = keys::load_or_create_host_key(&config.data_dir)?;
    println!("{}", keys::fingerprint(key.public_key()));
    Ok(())
}

fn manage_keys(config: Option<PathBuf>, action: KeysAction) -> anyhow::Result<()> {
    let (config, _) = ServerConfig::load(config.as_deref())?;
    if config.allow_any_key {
        eprintln!("shed-server: note: allow_any_key = true, so the gateway accepts any key anyway");
    }
    let path = config.authorized_keys_path();
    match action {
        KeysAction::Add { key } => {
            let line = read_key_argument(&key)?;
            let added = keys::add_key(&path, &line)?;
            println!(
                "added {} {} {} to {}",
                added.fingerprint,
                added.algorithm,
                added.comment,
                path.display()
            );
        }
        KeysAction::List => {
            for key in keys::list_keys(&path)? {
                let mut line = format!("{} {}", key.fingerprint, key.algorithm);
                for part in [&key.comment, &key.options] {
                    if !part.is_empty() {
                        line.push(' ');
                        line.push_str(&printable(part));
                    }
                }
                println!("{line}");
            }
        }
        KeysAction::Remove { key } => {
            for removed in keys::remove_key(&path, &key)? {
                println!(
                    "removed {} {} {}",
                    removed.fingerprint, removed.algorithm, removed.comment
                );
            }
        }
    }
    Ok(())
}

/// `text` with control characters escaped, so a crafted comment cannot
/// rewrite the terminal or forge list lines.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Public key files are tiny; anything bigger is not one.
const MAX_KEY_INPUT: u64 = 64 * 1024;

/// The key line itself, the contents of the file it names, or standard input for `-`.
fn read_key_argument(arg: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    if arg == "-" {
        std::io::stdin()
            .take(MAX_KEY_INPUT)
            .read_to_string(&mut text)
            .context("reading the key from standard input")?;
        return Ok(text);
    }
    let path = Path::new(arg);
    if path.is_file() {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_KEY_INPUT).read_to_string(&mut text))
            .with_context(|| format!("reading {}", path.display()))?;
        return Ok(text);
    }
    Ok(arg.to_string())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn install(config: Option<PathBuf>, user: Option<String>, dry_run: bool) -> anyhow::Result<()> {
    let system = is_root();
    if user.is_some() && !system {
        anyhow::bail!("--user is for system units (run as root); a user unit runs as you");
    }
    let config_path = match config {
        Some(path) => path,
        None => match ServerConfig::load(None)? {
            (_, ConfigSource::File(path)) => path,
            (_, ConfigSource::Defaults) => anyhow::bail!(
                "no config file found; write one (shed-server default-config > /etc/shed/server.toml) \
                 and pass --config FILE"
            ),
        },
    };
    // A unit that cannot start is worse than no unit: check the config now.
    ServerConfig::from_file(&config_path)?;
    let config_path = std::fs::canonicalize(&config_path)
        .with_context(|| format!("resolving {}", config_path.display()))?;
    let binary = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .context("finding this program's path")?;
    let unit = install::render_unit(&UnitSpec {
        binary,
        config: config_path,
        user,
        system,
    })?;
    let path = install::unit_dir(system).join(UNIT_NAME);
    if dry_run {
        println!("# {}", path.display());
        print!("{unit}");
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, &unit).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    let steps = [
        install::systemctl(system, &["daemon-reload"]),
        install::systemctl(system, &["enable", "--now", UNIT_NAME]),
    ];
    run_or_print(&steps)?;
    if !system {
        println!(
            "to keep it running while you are logged out: loginctl enable-linger {}",
            std::env::var("USER").unwrap_or_else(|_| "$USER".into())
        );
    }
    Ok(())
}

fn uninstall() -> anyhow::Result<()> {
    let system = is_root();
    let path = install::unit_dir(system).join(UNIT_NAME);
    if !path.exists() {
        println!("{} does not exist; nothing to do", path.display());
        return Ok(());
    }
    run_or_print(&[install::systemctl(system, &["disable", "--now", UNIT_NAME])])?;
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    println!("removed {}", path.display());
    run_or_print(&[install::systemctl(system, &["daemon-reload"])])
}

/// Runs each command when systemd manages this machine; otherwise (a
/// container, CI, or an overridden unit directory) says what to run instead,
/// since a unit written for later use is still useful.
fn run_or_print(steps: &[Vec<String>]) -> anyhow::Result<()> {
    if !install::systemd_usable() {
        println!("systemd is not running here (or the unit directory is overridden); run:");
        for step in steps {
            println!("  {}", step.join(" "));
        }
        return Ok(());
    }
    for step in steps {
        println!("running: {}", step.join(" "));
        let status = std::process::Command::new(&step[0])
            .args(&step[1..])
            .status()
            .with_context(|| format!("running {}", step[0]))?;
        if !status.success() {
            anyhow::bail!("`{}` failed ({status})", step.join(" "));
        }
    }
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_shows_examples() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Examples:"), "{help}");
        assert!(help.contains("shed-server keys add"), "{help}");
        Cli::command().debug_assert();
    }
}
