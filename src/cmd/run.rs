//! `firedrill run` and `firedrill resume`: a drill run with Ctrl-C handling
//! and the right view, or (`--dry-run`) everything it would do, resolved.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::drill;
use crate::error::{
    EXIT_ABORTED, EXIT_ERROR, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, Error,
};

fn parse_var(text: &str) -> Result<(String, String), Error> {
    match text.split_once('=') {
        Some((name, _)) if crate::vars::is_reserved(name) => {
            Err(Error::ReservedVar(name.to_owned()))
        }
        Some((name, value)) if drill::is_valid_var_name(name) => {
            Ok((name.to_owned(), value.to_owned()))
        }
        _ => Err(Error::InvalidVar(text.to_owned())),
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
        drill::Target::Kind(kind) => {
            crate::target::kind_target(kind, &loaded.dir, scope(loaded), resuming)
        }
        drill::Target::Kwok(kwok) => crate::target::kwok_target(kwok, scope(loaded), resuming),
        drill::Target::Cluster(cluster) => std::sync::Arc::new(
            crate::target::cluster::ClusterTarget::new(cluster, scope(loaded)),
        ),
    }
}

/// The drill's blast radius on a Kubernetes target (docs/drill-format.md,
/// "scope").
fn scope(loaded: &drill::LoadedDrill) -> crate::target::kube::scope::Scope {
    loaded
        .drill
        .blast_radius(&loaded.dir, loaded.drill.manifests())
        .unwrap_or_default()
}

/// `firedrill run FILE|DIR...`: runs a drill (or `--dry-run` shows what it
/// would do); several drills run one after another, a game day.
pub(super) fn run(args: &crate::cli::RunArgs) -> Result<i32, Error> {
    let files = super::drill_files(&args.files)?;
    let game_day = files.len() > 1 || args.files.iter().any(|path| path.is_dir());
    let drills = load_all(&files)?;
    let vars = args
        .vars
        .iter()
        .map(|text| parse_var(text))
        .collect::<Result<Vec<_>, _>>()?;
    let surprise = args
        .surprise
        .as_deref()
        .map(crate::gameday::Surprise::parse)
        .transpose()
        .map_err(Error::Surprise)?;
    if game_day && (args.run_dir.is_some() || args.junit.is_some()) {
        return Err(Error::OneRunOnly(drills.len()));
    }
    let options = || crate::engine::run::Options {
        vars: vars.clone(),
        seed: args.seed,
        parallel: args
            .parallel
            .unwrap_or(crate::engine::run::DEFAULT_PARALLEL),
        keep: args.keep,
        runbook_continue: args.runbook_continue,
        interactive: args.interactive,
        run_dir: args.run_dir.clone(),
        halt_file: args.halt_file.clone(),
        surprise: surprise.clone(),
        ..Default::default()
    };
    if args.dry_run {
        let mut code = EXIT_OK;
        for loaded in &drills {
            code = worst(code, dry_run(loaded, &options())?);
        }
        return Ok(code);
    }
    // The big red button: while it is pressed no run starts, and none is
    // recorded (history counts no aborted run that never began).
    if args.halt_file.exists() {
        eprintln!(
            "halted: the halt file {} exists, so no drill starts; remove it to run",
            args.halt_file.display()
        );
        return Ok(EXIT_ABORTED);
    }
    if !game_day {
        return execute(&drills[0], options(), args.json, args.junit.as_deref());
    }
    crate::process::become_subreaper();
    let runtime = runtime()?;
    let ended = runtime.block_on(async {
        let interrupt = interrupt_on_signals();
        let mut rows = Vec::new();
        let mut code = EXIT_OK;
        for (index, loaded) in drills.iter().enumerate() {
            let mut row = crate::report::terminal::GameDayRow {
                drill: loaded.drill.name.clone(),
                journal: None,
                run_dir: None,
                missing: "skipped",
            };
            if !*interrupt.borrow() {
                say(
                    args.json,
                    &format!(
                        "\n== game day: drill {} of {}: {} ({})\n",
                        index + 1,
                        drills.len(),
                        loaded.drill.name,
                        loaded.path.display()
                    ),
                );
                match drive(loaded, options(), args.json, None, interrupt.clone()).await {
                    Ok(ran) => {
                        code = worst(code, ran.code);
                        row.journal = Some(ran.journal);
                        row.run_dir = Some(ran.run_dir);
                    }
                    Err(error) => {
                        super::print_error(&error);
                        code = worst(code, error.exit_code());
                        row.missing = "error";
                    }
                }
            }
            rows.push(row);
        }
        if *interrupt.borrow() {
            code = worst(code, EXIT_INTERRUPTED);
        }
        say(args.json, &crate::report::terminal::game_day_table(&rows));
        Ok(code)
    });
    // What is still running does not hold the exit: every run has ended and
    // swept its processes; a stuck task is abandoned (an `--interactive`
    // prompt reads stdin on a thread of its own, which never holds it).
    runtime.shutdown_timeout(crate::engine::run::RUNTIME_DEADLINE);
    ended
}

/// Loads every drill first: a game day does not stop halfway at a drill
/// that was never valid. One drill's problems are the error as for any
/// command; several drills' are printed one by one and summed up.
fn load_all(files: &[PathBuf]) -> Result<Vec<drill::LoadedDrill>, Error> {
    if let [file] = files {
        return Ok(vec![super::load(file)?]);
    }
    let mut drills = Vec::new();
    let (mut invalid, mut problems) = (0, 0);
    for file in files {
        match super::load(file) {
            Ok(loaded) => drills.push(loaded),
            Err(error) => {
                if let Error::Drill(found) = &error {
                    problems += found.problems.len();
                }
                invalid += 1;
                super::print_error(&error);
            }
        }
    }
    if invalid > 0 {
        return Err(Error::InvalidDrills {
            invalid,
            total: files.len(),
            problems,
        });
    }
    Ok(drills)
}

/// Prints what a run says besides its events: on stdout, or on stderr when
/// stdout carries `--json` events.
fn say(json: bool, text: &str) {
    if json {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// The worse of two exit codes, for a game day's: interrupted, then
/// invalid input, error, aborted, failed, passed.
fn worst(a: i32, b: i32) -> i32 {
    let rank = |code: i32| match code {
        EXIT_OK => 0,
        EXIT_FAILED => 1,
        EXIT_ABORTED => 2,
        EXIT_ERROR => 3,
        EXIT_INVALID => 4,
        _ => 5,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// `firedrill resume RUN_DIR`: continues a run whose runner died.
pub(super) fn resume(run_dir: &Path) -> Result<i32, Error> {
    let resume = crate::engine::resume::Resume::read(run_dir).map_err(Error::RunDir)?;
    // Another drill than the one that started would inject faults twice and
    // never revert the first ones.
    let changed = resume.changed_files();
    if !changed.is_empty() {
        return Err(Error::FilesChanged {
            run_id: resume.run_id.clone(),
            run_dir: run_dir.to_owned(),
            changed,
        });
    }
    let loaded = super::load(&resume.scenario)?;
    // The options the run started with, as it started with them.
    let recorded = resume.options.clone().unwrap_or_default();
    let defaults = crate::engine::run::Options::default();
    let options = crate::engine::run::Options {
        vars: recorded.vars,
        seed: Some(resume.seed),
        parallel: if recorded.parallel == 0 {
            defaults.parallel
        } else {
            recorded.parallel
        },
        keep: recorded.keep,
        runbook_continue: recorded.runbook_continue,
        run_dir: Some(resume.run_dir.clone()),
        halt_file: if recorded.halt_file.is_empty() {
            defaults.halt_file.clone()
        } else {
            std::path::PathBuf::from(recorded.halt_file)
        },
        resume: Some(resume),
        ..defaults
    };
    execute(&loaded, options, false, None)
}

/// The async runtime a run needs.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

/// Turns true at the first terminating signal (call it inside the runtime,
/// before a run starts anything): every terminating signal from here on
/// ends the run as Ctrl-C does, and a game day skips its other drills.
fn interrupt_on_signals() -> tokio::sync::watch::Receiver<bool> {
    let (interrupt_tx, interrupt_rx) = tokio::sync::watch::channel(false);
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
    interrupt_rx
}

/// Runs a drill (new or resumed) with Ctrl-C handling and the right view.
fn execute(
    loaded: &drill::LoadedDrill,
    options: crate::engine::run::Options,
    json: bool,
    junit: Option<&Path>,
) -> Result<i32, Error> {
    // Orphans of the run's processes come back to us, so the sweep finds them.
    crate::process::become_subreaper();
    let runtime = runtime()?;
    let ended = runtime.block_on(async {
        let interrupt = interrupt_on_signals();
        Ok(drive(loaded, options, json, junit, interrupt).await?.code)
    });
    // What is still running does not hold the exit: the run has ended and
    // swept its processes; a stuck task is abandoned (an `--interactive`
    // prompt reads stdin on a thread of its own, which never holds it).
    runtime.shutdown_timeout(crate::engine::run::RUNTIME_DEADLINE);
    ended
}

/// How one drill ended.
struct Ran {
    code: i32,
    journal: crate::journal::Journal,
    run_dir: PathBuf,
}

/// Runs one drill with the right view and prints its summary.
async fn drive(
    loaded: &drill::LoadedDrill,
    options: crate::engine::run::Options,
    json: bool,
    junit: Option<&Path>,
    interrupt: tokio::sync::watch::Receiver<bool>,
) -> Result<Ran, Error> {
    let mut reporters: Vec<Box<dyn crate::event::Reporter>> = Vec::new();
    // The operator's prompts and live bars would fight over the terminal.
    let terminal = std::io::stderr().is_terminal() && !json && !options.interactive;
    if json {
        reporters.push(Box::new(crate::report::terminal::JsonLines::new(
            std::io::stdout(),
        )));
    } else if terminal {
        reporters.push(Box::new(crate::report::terminal::Live::new()));
    } else {
        let color = crate::text::use_color(std::io::stdout().is_terminal());
        reporters.push(Box::new(crate::report::terminal::Plain::with_color(
            std::io::stdout(),
            color,
        )));
    }
    let target = make_target(loaded, options.resume.is_some());
    let outcome = crate::engine::run::run(loaded, target, options, reporters, interrupt)
        .await
        .map_err(|error| Error::Start(error.0))?;
    if let Some(junit) = junit {
        let from = outcome.run_dir.join("junit.xml");
        if let Err(error) = std::fs::copy(&from, junit) {
            eprintln!("warning: cannot write {}: {error}", junit.display());
        }
    }
    say(
        json,
        &crate::report::terminal::summary(&outcome.journal, &outcome.run_dir),
    );
    Ok(Ran {
        code: outcome.exit_code,
        journal: outcome.journal,
        run_dir: outcome.run_dir,
    })
}

fn dry_run(
    loaded: &drill::LoadedDrill,
    options: &crate::engine::run::Options,
) -> Result<i32, Error> {
    let drill = &loaded.drill;
    let run_id = crate::engine::run::new_run_id(&drill.name);
    let run_dir = options
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".firedrill/runs").join(&run_id));
    // Absolute, as a run makes it: a relative WORKDIR would be read against
    // the drill's directory and every WORKDIR fault shown as refused.
    let run_dir = std::path::absolute(&run_dir).unwrap_or(run_dir);
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
    let given: std::collections::BTreeSet<String> =
        options.vars.iter().map(|(name, _)| name.clone()).collect();
    let unset = super::validate::unset_variables(loaded, &given);
    if !unset.is_empty() {
        println!();
        for warning in unset {
            println!("{warning}");
        }
    }
    let faults: Vec<_> = drill
        .steps
        .iter()
        .filter_map(|step| Some((step, step.fault()?)))
        .collect();
    let mut refused = Vec::new();
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
            if what.contains(crate::target::REFUSED) {
                refused.push(step.id.value.clone());
            }
            println!("  {}: {} → {}", step.id.value, fault.spec.kind(), what);
        }
    }
    if !refused.is_empty() {
        // The run would refuse them and abort: say so, and exit as it would.
        println!(
            "\nthe run would refuse {} and abort (exit 3): a fault may only touch what the run owns",
            refused.join(", ")
        );
        return Ok(EXIT_ABORTED);
    }
    Ok(EXIT_OK)
}
