//! shed-server: parses arguments, sets up logging, and runs the server.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shed::server::config::{ConfigSource, ServerConfig, EXAMPLE_CONFIG};

/// Serves sheds (persistent Docker workspaces) over HTTP and SSH.
#[derive(Parser)]
#[command(name = "shed-server", version)]
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
    },
    /// Print a commented example config.
    DefaultConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::DefaultConfig => {
            print!("{EXAMPLE_CONFIG}");
            ExitCode::SUCCESS
        }
        Command::Serve { config } => {
            init_logging();
            match run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("shed-server: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run(config: Option<PathBuf>) -> anyhow::Result<()> {
    let (config, source) = ServerConfig::load(config.as_deref())?;
    match &source {
        ConfigSource::File(path) => tracing::info!(path = %path.display(), "loaded config"),
        ConfigSource::Defaults => tracing::info!("no config file found; using built-in defaults"),
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(shed::server::serve(config))
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
