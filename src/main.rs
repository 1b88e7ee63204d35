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
    use firedrill::cli::Command;
    if matches!(
        cli.command,
        Command::Validate { .. }
            | Command::Plan { .. }
            | Command::Report { .. }
            | Command::History { .. }
            | Command::Runbook { .. }
            | Command::Schema
            | Command::Completions { .. }
    ) {
        firedrill::signal::quiet_on_closed_stdout();
    }
    firedrill::logging::init(cli.verbose);
    std::process::exit(firedrill::app::run(cli));
}
