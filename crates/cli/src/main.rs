//! `mercato`: the operator CLI (see the library docs for the commands, the trust assumptions and
//! the exit codes).

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use mercato_cli::{Cli, Progress, execute};

#[tokio::main]
async fn main() -> ExitCode {
    // Usage errors print clap's message and exit with 2; --help and --version exit with 0.
    let cli = Cli::parse();
    let mut progress = Progress::stderr();
    match execute(cli, &mut progress).await {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
        }
    }
}
