//! `firedrill run` and `firedrill resume`: a drill run with Ctrl-C handling
//! and the right view, or (`--dry-run`) everything it would do, resolved.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::drill;
use crate::error::{EXIT_OK, Error};

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

/// `firedrill run FILE`: runs a drill (or `--dry-run` shows what it would do).
pub(super) fn run(args: &crate::cli::RunArgs) -> Result<i32, Error> {
    let loaded = super::load(&args.file)?;
    let vars = args
        .vars
        .iter()
        .map(|text| parse_var(text))
        .collect::<Result<Vec<_>, _>>()?;
    let options = crate::engine::run::Options {
        vars,
        seed: args.seed,
        parallel: args
            .parallel
            .unwrap_or(crate::engine::run::DEFAULT_PARALLEL),
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
    // The big red button: while it is pressed no run starts, and none is
    // recorded (history counts no aborted run that never began).
    if args.halt_file.exists() {
        eprintln!(
            "halted: the halt file {} exists, so no drill starts; remove it to run",
            args.halt_file.display()
        );
        return Ok(crate::error::EXIT_ABORTED);
    }
    execute(&loaded, options, args.json, args.junit.as_deref())
}

/// `firedrill resume RUN_DIR`: continues a run whose runner died.
pub(super) fn resume(run_dir: &Path) -> Result<i32, Error> {
    let resume = crate::engine::resume::Resume::read(run_dir).map_err(Error::RunDir)?;
    let loaded = super::load(&resume.scenario)?;
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
) -> Result<i32, Error> {
    // Orphans of the run's processes come back to us, so the sweep finds them.
    crate::process::become_subreaper();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let ended = runtime.block_on(async {
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
            let color = crate::text::use_color(std::io::stdout().is_terminal());
            reporters.push(Box::new(crate::report::terminal::Plain::with_color(
                std::io::stdout(),
                color,
            )));
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
                Ok(outcome.exit_code)
            }
            Err(error) => Err(Error::Start(error.0)),
        }
    });
    // What is still running does not hold the exit: the run has ended and
    // swept its processes; a blocking read (a prompt of `--interactive`
    // reading stdin after Ctrl-C) or a stuck task is abandoned.
    runtime.shutdown_timeout(crate::engine::run::RUNTIME_DEADLINE);
    ended
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
                | drill::FaultSpec::Kind(_)) => target.preview(spec, &ctx),
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
        return Ok(crate::error::EXIT_ABORTED);
    }
    Ok(EXIT_OK)
}
