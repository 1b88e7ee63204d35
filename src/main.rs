//! The `firedrill` binary: parse arguments, call the library, exit.

use clap::Parser;

fn main() {
    let cli = match firedrill::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                firedrill::app::EXIT_INVALID
            } else {
                0
            };
            let _ = error.print();
            std::process::exit(code);
        }
    };
    firedrill::logging::init(cli.verbose);
    std::process::exit(firedrill::app::run(cli));
}
