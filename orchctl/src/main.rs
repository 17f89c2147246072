//! The `orchctl` binary: parses the command line and hands it to the library.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = orchctl::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: cannot start orchctl's runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut input = std::io::stdin().lock();
    let mut io = orchctl::Io {
        out: &mut out,
        err: &mut err,
        input: &mut input,
        err_tty: std::io::stderr().is_terminal(),
    };
    let code = runtime.block_on(orchctl::run(cli, &mut io));
    let _ = out.flush();
    ExitCode::from(code)
}
