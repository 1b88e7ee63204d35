//! The `firedrill` binary: parse arguments, call the library, exit.

use clap::Parser;
use firedrill::error::{EXIT_INVALID, EXIT_OK};

fn main() {
    let cli = match firedrill::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // `--help` and `--version` are "errors" that go to stdout.
            let code = if error.use_stderr() {
                EXIT_INVALID
            } else {
                EXIT_OK
            };
            let _ = error.print();
            std::process::exit(code);
        }
    };
    firedrill::logging::init(cli.verbose);
    let code = match firedrill::cmd::run(cli) {
        Ok(code) => code,
        Err(error) => {
            firedrill::cmd::print_error(&error);
            error.exit_code()
        }
    };
    std::process::exit(code);
}
