//! The `callrec` binary: sets up logging, parses the command line and hands it to [`cli`].
//! Errors reach the user as one line saying what went wrong and what to do; exit status is
//! non-zero on any failure.

mod cli;

use clap::Parser;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = cli::run(cli::Cli::parse()) {
        eprintln!("callrec: {e:#}");
        std::process::exit(1);
    }
}
