//! The commands: what each subcommand does, everything it prints, and the
//! error it ends with. `main` only turns the result into an exit code.

mod clean;
mod cluster_id;
mod completions;
mod history;
mod plan;
mod report;
mod run;
mod runbook;
mod schema;
mod validate;

use std::io::IsTerminal;

use crate::cli::{Cli, Command, RunbookCommand};
use crate::error::Error;

pub use validate::drill_files;

/// Runs a parsed command line. `Ok` carries the exit code of a command that
/// ran to its end (a drill's verdict, lint findings); `Err` one that could not.
pub fn run(cli: Cli) -> Result<i32, Error> {
    // Commands that only print end quietly when their reader goes (`| head`);
    // a run, resume or clean must revert and sweep whatever happens to stdout.
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
        crate::signal::quiet_on_closed_stdout();
    }
    match cli.command {
        Command::Validate { paths } => validate::validate(&paths),
        Command::Plan { file, format } => plan::plan(&file, format),
        Command::Schema => schema::schema(),
        Command::Runbook {
            command: RunbookCommand::Lint { files, drill },
        } => runbook::lint(&files, drill.as_deref()),
        Command::Completions { shell } => completions::completions(shell),
        Command::Run(args) => run::run(&args),
        Command::Clean { run_dir } => clean::clean(&run_dir),
        Command::Ack { run_dir } => Ok(crate::gameday::ack_command(&run_dir)),
        Command::Note { run_dir, text } => Ok(crate::gameday::note_command(&run_dir, &text)),
        Command::Step {
            run_dir,
            step,
            mark,
            note,
        } => Ok(crate::gameday::step_command(
            &run_dir,
            usize::try_from(step).unwrap_or(usize::MAX),
            mark,
            note.as_deref(),
        )),
        Command::Resume { run_dir } => run::resume(&run_dir),
        Command::Report { run_dir, format } => report::report(&run_dir, format),
        Command::History { scenario, dir } => history::history(&dir, scenario.as_deref()),
        Command::ClusterId {
            kubeconfig,
            context,
        } => cluster_id::cluster_id(&kubeconfig, context.as_deref()),
    }
}

/// Prints an error the way the commands print problems: a drill's problems
/// located and underlined, a summary as is, anything else as `error: ...`.
pub fn print_error(error: &Error) {
    match error {
        Error::Drill(problems) => eprint!("{}", problems.render(stderr_color())),
        summary if summary.is_summary() => eprintln!("{summary}"),
        other => eprintln!("error: {other}"),
    }
}

/// Whether stderr gets colors.
pub fn stderr_color() -> bool {
    crate::text::use_color(std::io::stderr().is_terminal())
}

/// Loads a drill; its problems become the error.
fn load(file: &std::path::Path) -> Result<crate::drill::LoadedDrill, Error> {
    crate::drill::load(file).map_err(|problems| Error::Drill(Box::new(problems)))
}
