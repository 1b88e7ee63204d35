//! What each command does; `main` only maps the result to an exit code.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::cli::{Cli, Command, PlanFormat};
use crate::drill;

/// Exit code for invalid input or usage (SPEC §8).
pub const EXIT_INVALID: i32 = 2;

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Validate { paths } => validate(&paths),
        Command::Plan { file, format } => plan(&file, format),
        Command::Schema => {
            let schema = schemars::schema_for!(drill::Drill);
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            0
        }
        Command::Runbook {
            command: crate::cli::RunbookCommand::Lint { files, drill },
        } => crate::runbook::lint_command(&files, drill.as_deref()),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "firedrill",
                &mut std::io::stdout(),
            );
            0
        }
        other => {
            eprintln!(
                "error: `{}` is not available in this build yet",
                command_name(&other)
            );
            EXIT_INVALID
        }
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Validate { .. } => "validate",
        Command::Plan { .. } => "plan",
        Command::Run(_) => "run",
        Command::Resume { .. } => "resume",
        Command::Clean { .. } => "clean",
        Command::Report { .. } => "report",
        Command::History { .. } => "history",
        Command::Runbook { .. } => "runbook",
        Command::Schema => "schema",
        Command::Completions { .. } => "completions",
    }
}

/// Whether stderr gets colors.
pub fn stderr_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Drill files named on the command line: files as given, directories
/// searched for `*.yaml` and `*.yml` (recursively, sorted).
pub fn drill_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = files.len();
            collect_yaml(path, &mut files)
                .map_err(|error| format!("cannot read directory {}: {error}", path.display()))?;
            if files.len() == before {
                return Err(format!(
                    "no *.yaml or *.yml drill files in {}",
                    path.display()
                ));
            }
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect_yaml(&entry, files)?;
        } else if entry
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            files.push(entry);
        }
    }
    Ok(())
}

fn validate(paths: &[PathBuf]) -> i32 {
    let files = match drill_files(paths) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_INVALID;
        }
    };
    let color = stderr_color();
    let mut invalid = 0;
    let mut problems = 0;
    for file in &files {
        match drill::load(file) {
            Ok(loaded) => println!(
                "ok: {} ({}, {} steps)",
                file.display(),
                loaded.drill.name,
                loaded.drill.steps.len()
            ),
            Err(report) => {
                invalid += 1;
                problems += report.problems.len();
                eprint!("{}", report.render(color));
            }
        }
    }
    if invalid == 0 {
        println!("{} drill{} valid", files.len(), plural(files.len()));
        0
    } else {
        eprintln!(
            "{invalid} of {} drill{} invalid ({problems} problem{})",
            files.len(),
            plural(files.len()),
            plural(problems)
        );
        EXIT_INVALID
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Loads a drill or prints its problems; `Err` carries the exit code.
pub fn load_or_report(file: &Path) -> Result<drill::LoadedDrill, i32> {
    drill::load(file).map_err(|report| {
        eprint!("{}", report.render(stderr_color()));
        EXIT_INVALID
    })
}

fn plan(file: &Path, format: PlanFormat) -> i32 {
    let loaded = match load_or_report(file) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let text = match format {
        PlanFormat::Text => crate::plan::render_text(&loaded.drill),
        PlanFormat::Dot => crate::plan::render_dot(&loaded.drill),
        PlanFormat::Mermaid => crate::plan::render_mermaid(&loaded.drill),
        PlanFormat::Json => crate::plan::render_json(&loaded.drill) + "\n",
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}
