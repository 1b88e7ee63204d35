//! Command-line definitions (docs/cli.md).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Game-day disaster-recovery drills: inject real faults, follow the runbook
/// exactly as written, score the recovery.
#[derive(Debug, Parser)]
#[command(name = "firedrill", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// More logging on stderr (repeat for more); `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// firedrill's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check drill files; exit 0 if all are valid, 2 otherwise (every problem is printed).
    Validate {
        /// Drill files, or directories to search for *.yaml / *.yml.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Show a drill's dependency graph: what runs when, and what waits for what.
    Plan {
        /// The drill file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// Run a drill, or several one after another (a game day).
    Run(RunArgs),
    /// Continue a run whose runner died.
    Resume {
        /// The run's directory.
        run_dir: PathBuf,
    },
    /// Acknowledge the incident of a run going on (time to acknowledge).
    Ack {
        /// The run's directory.
        run_dir: PathBuf,
    },
    /// Add a timestamped note to a run going on.
    Note {
        /// The run's directory.
        run_dir: PathBuf,
        /// The note.
        text: String,
    },
    /// Mark a step of the runbook people follow in a run going on.
    Step {
        /// The run's directory.
        run_dir: PathBuf,
        /// The runbook step, counted from 1.
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        step: u64,
        /// How it went.
        #[arg(value_enum)]
        mark: crate::journal::StepMark,
        /// Why (what was wrong, what you did instead).
        #[arg(long)]
        note: Option<String>,
    },
    /// End whatever a dead run left running and remove its WORKDIR.
    Clean {
        /// The run's directory.
        run_dir: PathBuf,
    },
    /// Regenerate a report from a run's records.
    Report {
        /// The run's directory.
        run_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
        format: ReportFormat,
    },
    /// Past runs and the trend per drill.
    History {
        /// Only this drill.
        #[arg(long)]
        scenario: Option<String>,
        /// Where runs are kept.
        #[arg(long, default_value = ".firedrill/runs")]
        dir: PathBuf,
    },
    /// Runbook tools.
    Runbook {
        /// The runbook command.
        #[command(subcommand)]
        command: RunbookCommand,
    },
    /// Print a cluster's kube-system UID, the `uid` a cluster target pins.
    ///
    /// Reads the kubeconfig, writes nothing.
    ClusterId {
        /// The kubeconfig file (`~` is the home directory), or `in-cluster` in a Pod.
        #[arg(long)]
        kubeconfig: String,
        /// The context (required unless `--kubeconfig in-cluster`).
        #[arg(long)]
        context: Option<String>,
    },
    /// Print the JSON Schema of the drill format (for editors).
    Schema,
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `firedrill runbook ...`.
#[derive(Debug, Subcommand)]
pub enum RunbookCommand {
    /// Check runbooks without running them; exit 1 if anything is found.
    Lint {
        /// Runbook files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Check variables against what this drill sets.
        #[arg(long)]
        drill: Option<PathBuf>,
    },
}

/// `firedrill run` options.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// The drill file; several files or directories run one after another
    /// (a game day) with one summary table at the end.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    /// An unannounced drill: the first fault starts at a moment in this
    /// window (`0-20m`), chosen by the seed and shown to nobody.
    #[arg(long, value_name = "LOW-HIGH")]
    pub surprise: Option<String>,
    /// Override a drill variable.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Seed for random choices (printed by every run, to replay it).
    #[arg(long)]
    pub seed: Option<u64>,
    /// How many steps may run at once (default: 256; steps mostly wait on
    /// processes, not on CPUs).
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Keep WORKDIR after the run.
    #[arg(long)]
    pub keep: bool,
    /// Walk through the runbook step by step (answers may come from a pipe).
    #[arg(long)]
    pub interactive: bool,
    /// Go on after a failed runbook step.
    #[arg(long)]
    pub runbook_continue: bool,
    /// Print events as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Resolve everything and print it; start and harm nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where the run's records go (default .firedrill/runs/<UTC time>-<drill>-<id>/, e.g. 20250301T101500Z-web-restore-3f2a).
    ///
    /// A new or empty directory only: one that holds a run is refused.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Also write the JUnit report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// The halt file: while it exists no fault starts and a running drill aborts.
    #[arg(long, default_value = ".firedrill/halt")]
    pub halt_file: PathBuf,
}

/// `plan --format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlanFormat {
    /// Stages of steps that can run together.
    Text,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
    /// JSON.
    Json,
}

/// `report --format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    /// Markdown.
    Md,
    /// Self-contained HTML.
    Html,
    /// The journal.
    Json,
    /// JUnit XML.
    Junit,
}
