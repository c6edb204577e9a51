//! shed: parses arguments, sets up logging, runs the command, maps the result to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use shed::client::cli::Cli;
use shed::client::output::{clean, one_line};

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, which turns `shed ... | head` into a panic on the
    // next print. Output cut short by its reader should end shed quietly, as
    // it ends any Unix filter. Sockets are unaffected (sends use
    // MSG_NOSIGNAL), and children get the default disposition anyway.
    // SAFETY: called before any other thread exists, with a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "shed=debug",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHED_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(shed::client::commands::run(cli)) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            eprintln!("error: {}", clean(&one_line(&format!("{e:#}"))));
            ExitCode::FAILURE
        }
    }
}
