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
        Command::Run(args) => run_command(&args),
        Command::Clean { run_dir } => clean_command(&run_dir),
        Command::Resume { run_dir } => resume_command(&run_dir),
        Command::Report { run_dir, format } => crate::report::report_command(&run_dir, format),
        Command::History { scenario, dir } => {
            crate::history::history_command(&dir, scenario.as_deref())
        }
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
        // A symlinked directory is not followed: no loops, nothing outside.
        if entry.symlink_metadata().is_ok_and(|meta| meta.is_dir()) {
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

/// Exit code for a run that could not be carried out (SPEC §8).
pub const EXIT_ERROR: i32 = 4;

fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, _)) if crate::vars::is_reserved(name) => Err(format!(
            "--var {name}: `{name}` is reserved: firedrill sets it for every run (WORKDIR, RUN_ID, DRILL, SCENARIO_DIR, RUN_DIR, CLUSTER, KUBECONFIG, KUBECACHEDIR, FIREDRILL_*, KIND_*)"
        )),
        Some((name, value)) if drill::is_valid_var_name(name) => {
            Ok((name.to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "--var {text:?}: expected NAME=VALUE with NAME made of letters, digits and _"
        )),
    }
}

fn make_target(
    loaded: &drill::LoadedDrill,
    resuming: bool,
) -> std::sync::Arc<dyn crate::target::Target> {
    match &loaded.drill.target {
        drill::Target::Local => std::sync::Arc::new(crate::target::local::LocalTarget::new(
            loaded
                .drill
                .services
                .iter()
                .map(|(name, service)| {
                    let spec = crate::target::local::ServiceSpec {
                        run: service.run.clone(),
                        env: service.env.clone(),
                        cwd: service.cwd.clone(),
                    };
                    (name.clone(), spec)
                })
                .collect(),
        )),
        drill::Target::Kind(kind) => crate::target::kind_target(kind, &loaded.dir, resuming),
        drill::Target::Kwok(kwok) => crate::target::kwok_target(kwok, resuming),
    }
}

fn run_command(args: &crate::cli::RunArgs) -> i32 {
    let loaded = match load_or_report(&args.file) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let mut vars = Vec::new();
    for text in &args.vars {
        match parse_var(text) {
            Ok(var) => vars.push(var),
            Err(error) => {
                eprintln!("error: {error}");
                return EXIT_INVALID;
            }
        }
    }
    let options = crate::engine::run::Options {
        vars,
        seed: args.seed,
        parallel: args
            .parallel
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        keep: args.keep,
        runbook_continue: args.runbook_continue,
        interactive: args.interactive,
        run_dir: args.run_dir.clone(),
        halt_file: args.halt_file.clone(),
        ..Default::default()
    };
    if args.dry_run {
        return dry_run(&loaded, &options);
    }
    execute(&loaded, options, args.json, args.junit.as_deref())
}

fn resume_command(run_dir: &Path) -> i32 {
    let resume = match crate::engine::resume::Resume::read(run_dir) {
        Ok(resume) => resume,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_INVALID;
        }
    };
    let loaded = match load_or_report(&resume.scenario) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let options = crate::engine::run::Options {
        seed: Some(resume.seed),
        run_dir: Some(resume.run_dir.clone()),
        resume: Some(resume),
        ..Default::default()
    };
    execute(&loaded, options, false, None)
}

/// Runs a drill (new or resumed) with Ctrl-C handling and the right view.
fn execute(
    loaded: &drill::LoadedDrill,
    options: crate::engine::run::Options,
    json: bool,
    junit: Option<&Path>,
) -> i32 {
    // Orphans of the run's processes come back to us, so the sweep finds them.
    crate::process::become_subreaper();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return EXIT_ERROR;
        }
    };
    runtime.block_on(async {
        let (interrupt_tx, interrupt_rx) = tokio::sync::watch::channel(false);
        // Registered before the run starts anything: every terminating
        // signal from here on ends the run as Ctrl-C does.
        let signalled = crate::signal::terminating();
        tokio::spawn(async move {
            let name = signalled.await;
            // The terminal may be gone (SIGHUP): a failed write is no reason to stop.
            let _ = writeln!(
                std::io::stderr(),
                "\ninterrupted ({name}): ending the drill's processes and reverting faults (Ctrl-C again does not skip this)"
            );
            let _ = interrupt_tx.send(true);
        });
        let mut reporters: Vec<Box<dyn crate::event::Reporter>> = Vec::new();
        // The operator's prompts and live bars would fight over the terminal.
        let terminal = std::io::stderr().is_terminal() && !json && !options.interactive;
        if json {
            reporters.push(Box::new(crate::report::terminal::JsonLines::new(std::io::stdout())));
        } else if terminal {
            reporters.push(Box::new(crate::report::terminal::Live::new()));
        } else {
            reporters.push(Box::new(crate::report::terminal::Plain::new(std::io::stdout())));
        }
        let target = make_target(loaded, options.resume.is_some());
        match crate::engine::run::run(loaded, target, options, reporters, interrupt_rx).await {
            Ok(outcome) => {
                if let Some(junit) = junit {
                    let from = outcome.run_dir.join("junit.xml");
                    if let Err(error) = std::fs::copy(&from, junit) {
                        eprintln!("warning: cannot write {}: {error}", junit.display());
                    }
                }
                let summary = crate::report::terminal::summary(&outcome.journal, &outcome.run_dir);
                if json {
                    eprint!("{summary}");
                } else {
                    print!("{summary}");
                }
                outcome.exit_code
            }
            Err(error) => {
                eprintln!("error: {error}");
                EXIT_INVALID
            }
        }
    })
}

fn dry_run(loaded: &drill::LoadedDrill, options: &crate::engine::run::Options) -> i32 {
    let drill = &loaded.drill;
    let run_id = crate::engine::run::new_run_id(&drill.name);
    let run_dir = options
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".firedrill/runs").join(&run_id));
    let workdir = run_dir.join("work");
    let target = make_target(loaded, options.resume.is_some());
    let env = crate::engine::run::run_env(
        loaded,
        &run_id,
        &run_dir,
        &workdir,
        &options.vars,
        target.vars(&run_dir),
    );
    let seed = options.seed.unwrap_or(0);
    let ctx = crate::target::RunContext {
        run_id: run_id.clone(),
        run_dir: run_dir.clone(),
        workdir: workdir.clone(),
        scenario_dir: loaded.dir.clone(),
        env: env.clone(),
        seed,
        emitter: crate::event::Emitter::new(Vec::new()),
    };
    println!(
        "dry run of {} ({}): nothing is started or harmed",
        drill.name,
        loaded.path.display()
    );
    println!("target: {}", target.describe());
    println!("run dir: {}", run_dir.display());
    println!(
        "seed: {}",
        options.seed.map_or(
            "chosen at random when the run starts (or give --seed)".to_owned(),
            |s| s.to_string()
        )
    );
    println!("\nvariables:");
    for (name, value) in &env {
        if name != crate::process::RUN_MARKER {
            println!("  {name}={value}");
        }
    }
    if !drill.services.is_empty() {
        println!("\nservices:");
        for (name, service) in &drill.services {
            println!("  {name}: {}", service.run.lines().next().unwrap_or(""));
        }
    }
    println!("\nplan:");
    print!("{}", crate::plan::render_text(drill));
    let faults: Vec<_> = drill
        .steps
        .iter()
        .filter_map(|step| Some((step, step.fault()?)))
        .collect();
    if !faults.is_empty() {
        println!("\nfaults would hit:");
        for (step, fault) in faults {
            let what = match &fault.spec {
                drill::FaultSpec::Shell(script) => {
                    format!("run: {}", script.lines().next().unwrap_or(""))
                }
                spec @ (drill::FaultSpec::Local(_)
                | drill::FaultSpec::Kube(_)
                | drill::FaultSpec::Kind(_)
                | drill::FaultSpec::Kwok(_)) => target.preview(spec, &ctx),
            };
            println!("  {}: {} → {}", step.id.value, fault.spec.kind(), what);
        }
    }
    0
}

/// `firedrill clean RUN_DIR`: ends what a dead run left running and removes
/// its WORKDIR. Processes are found by the run's marker in their environment,
/// so a pid reused by an unrelated process is never touched.
fn clean_command(run_dir: &Path) -> i32 {
    let run = match crate::engine::resume::Resume::load(run_dir) {
        Ok(run) => run,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_INVALID;
        }
    };
    if run.runner_alive() && !run.has_finished() {
        let pid = run.pid;
        eprintln!(
            "error: the run's runner (pid {pid}) is still alive; stop it with Ctrl-C (or `kill -INT {pid}`) and it cleans up itself"
        );
        return EXIT_ERROR;
    }
    if let Some(foreign) = &run.foreign_workdir {
        eprintln!(
            "warning: events.jsonl names WORKDIR {}, outside {}; only {} is removed",
            foreign.display(),
            run_dir.display(),
            run.workdir.display()
        );
    }
    let recorded = crate::leftovers::Recorded::from_events(&run.events);
    let (run_id, workdir) = (run.run_id, run.workdir);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_ERROR;
        }
    };
    let ended = runtime.block_on(async {
        let grace = std::time::Duration::from_secs(5);
        let mut ended = crate::process::sweep(&run_id, grace, false).await;
        // Those that scrubbed their environment: by recorded group and session.
        ended.extend(recorded.end(grace).await);
        ended.sort_unstable();
        ended.dedup();
        ended
    });
    println!(
        "ended {} process{} of run {run_id}",
        ended.len(),
        if ended.len() == 1 { "" } else { "es" }
    );
    // Only a real directory: a symlink named `work` is removed, not followed.
    if workdir.symlink_metadata().is_ok() {
        match std::fs::remove_dir_all(&workdir) {
            Ok(()) => println!("removed {}", workdir.display()),
            Err(error) => {
                eprintln!("error: cannot remove {}: {error}", workdir.display());
                return EXIT_ERROR;
            }
        }
    }
    0
}
