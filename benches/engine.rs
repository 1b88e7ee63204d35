//! The engine's own cost: a drill of 200 `wait: 0ms` steps between a `run`
//! fault and a `run` recovery, through `engine::run::run` on a target that
//! does nothing, with 1 and 8 steps at once (and the fault and recovery
//! alone, the fixed cost of a run); and one scan of /proc for a
//! run's marked processes (`process::marked_processes`, the sweep at the end
//! of every run). Scheduler scaling: chains (each step needs the one
//! before) and fan-outs (every step needs the fault, the recovery needs them
//! all) of 1k, 10k and 50k `wait: 0ms` steps, built in code (50k steps are
//! more than a YAML drill may hold).

mod harness;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use firedrill::drill::{FaultSpec, LoadedDrill, parse_source};
use firedrill::engine::run::{Options, run};
use firedrill::journal::Verdict;
use firedrill::target::{Injected, RunContext, Target, TargetError, Undo};
use harness::Bench;
use tokio::sync::watch;

/// Steps between the fault and the recovery.
const WAITS: usize = 200;

/// A target with nothing to bring up, inject or revert: what is left of a
/// run is the engine's scheduling, events and records.
struct NoTarget;

#[async_trait]
impl Target for NoTarget {
    fn describe(&self) -> String {
        "bench".to_owned()
    }
    async fn setup(&self, _ctx: &RunContext) -> Result<BTreeMap<String, String>, TargetError> {
        Ok(BTreeMap::new())
    }
    fn preview(&self, _fault: &FaultSpec, _ctx: &RunContext) -> String {
        String::new()
    }
    async fn inject(
        &self,
        _step: &str,
        _fault: &FaultSpec,
        _env: &BTreeMap<String, String>,
        _ctx: &RunContext,
    ) -> Result<Injected, TargetError> {
        Ok(Injected {
            targets: Vec::new(),
            detail: String::new(),
            undo: None,
        })
    }
    async fn revert(&self, _undo: &Undo, _ctx: &RunContext) -> Result<String, TargetError> {
        Ok(String::new())
    }
    async fn collect_evidence(&self, _dir: &Path, _ctx: &RunContext) {}
    async fn teardown(&self, _ctx: &RunContext, _keep: bool) {}
}

/// A `run` fault, `waits` steps of `wait: 0ms` that need it, and a `run`
/// recovery that needs them all.
fn drill_text(waits: usize) -> String {
    let mut text = String::from(
        "version: 1\nname: engine-bench\nobjectives: {rto: 1m}\nsteps:\n  - id: break\n    fault: {run: \"true\"}\n",
    );
    for i in 0..waits {
        let _ = writeln!(text, "  - id: w{i}\n    needs: [break]\n    wait: 0ms");
    }
    let needs: Vec<String> = if waits == 0 {
        vec!["break".to_owned()]
    } else {
        (0..waits).map(|i| format!("w{i}")).collect()
    };
    let _ = writeln!(
        text,
        "  - id: fix\n    needs: [{}]\n    recover: {{run: \"true\"}}",
        needs.join(", ")
    );
    text
}

/// How the waits of a scaled drill depend on each other.
#[derive(Clone, Copy)]
enum Shape {
    /// `w0 → w1 → …`: one step ready at a time.
    Chain,
    /// Every wait needs only the fault: all ready at once.
    FanOut,
}

/// The drill of `drill_text(1)` with its one wait copied `waits` times.
fn scaled(shape: Shape, waits: usize, dir: &Path) -> LoadedDrill {
    let mut loaded = load(&drill_text(1), dir);
    let steps = std::mem::take(&mut loaded.drill.steps);
    let [fault, wait, fix] =
        <[_; 3]>::try_from(steps).unwrap_or_else(|_| panic!("the template drill has three steps"));
    let located = |id: String| firedrill::drill::yaml::Located::new(id);
    let mut steps = vec![fault];
    for i in 0..waits {
        let mut step = wait.clone();
        step.id = located(format!("w{i}"));
        step.needs = vec![located(match (shape, i) {
            (Shape::Chain, i) if i > 0 => format!("w{}", i - 1),
            _ => "break".to_owned(),
        })];
        steps.push(step);
    }
    let mut fix = fix;
    fix.needs = match shape {
        Shape::Chain => vec![located(format!("w{}", waits - 1))],
        Shape::FanOut => (0..waits).map(|i| located(format!("w{i}"))).collect(),
    };
    steps.push(fix);
    loaded.drill.steps = steps;
    loaded
}

fn load(text: &str, dir: &Path) -> LoadedDrill {
    match parse_source(text, dir) {
        Ok(drill) => LoadedDrill {
            path: dir.join("engine-bench.yaml"),
            dir: dir.to_path_buf(),
            drill,
        },
        Err(problems) => panic!("the engine drill does not validate: {problems:?}"),
    }
}

/// Runs the drill once in a fresh run directory under `root`.
fn run_once(
    runtime: &tokio::runtime::Runtime,
    loaded: &LoadedDrill,
    root: &Path,
    parallel: usize,
    counter: &AtomicUsize,
) -> Verdict {
    let run_dir: PathBuf = root.join(format!("run-{}", counter.fetch_add(1, Ordering::Relaxed)));
    let options = Options {
        parallel,
        seed: Some(1),
        sweep_descendants: false,
        run_dir: Some(run_dir),
        halt_file: root.join("halt"),
        ..Options::default()
    };
    let (_interrupt_tx, interrupt) = watch::channel(false);
    let outcome = runtime.block_on(run(
        loaded,
        Arc::new(NoTarget),
        options,
        Vec::new(),
        interrupt,
    ));
    match outcome {
        Ok(outcome) => outcome.journal.verdict,
        Err(error) => panic!("the run did not start: {error}"),
    }
}

fn main() {
    let mut bench = Bench::from_args("engine: scheduling and sweep");
    let root = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot create a temporary directory: {error}"),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot start a tokio runtime: {error}"),
    };
    let counter = AtomicUsize::new(0);
    // The fault and the recovery alone: the fixed cost of a run (records,
    // two shells, the sweep), to subtract from the long run's.
    for (waits, parallel) in [(0, 1usize), (WAITS, 1), (WAITS, 8)] {
        let loaded = load(&drill_text(waits), root.path());
        let steps = waits as u64 + 2;
        let name = format!("run/{steps}-steps/parallel-{parallel}");
        if !bench.wants(&name) {
            continue;
        }
        // A run that did not pass measured something else (an early error).
        let verdict = run_once(&runtime, &loaded, root.path(), parallel, &counter);
        assert_eq!(verdict, Verdict::Passed, "the engine drill did not pass");
        bench.run(&name, steps, "steps", || {
            run_once(&runtime, &loaded, root.path(), parallel, &counter)
        });
    }
    // Scheduler scaling: linear in steps and needs, at the default limit.
    let parallel = Options::default().parallel;
    for (shape, label) in [(Shape::Chain, "chain"), (Shape::FanOut, "fan-out")] {
        for waits in [1_000, 10_000, 50_000] {
            let name = format!("scheduler/{label}/{}k-waits", waits / 1000);
            if !bench.wants(&name) {
                continue;
            }
            let loaded = scaled(shape, waits, root.path());
            let verdict = run_once(&runtime, &loaded, root.path(), parallel, &counter);
            assert_eq!(verdict, Verdict::Passed, "the scaled drill did not pass");
            bench.run(&name, waits as u64 + 2, "steps", || {
                run_once(&runtime, &loaded, root.path(), parallel, &counter)
            });
        }
    }
    // The floor under a `wait: 0ms` step: tokio's timer has millisecond
    // resolution, so even a zero sleep lasts until its next tick.
    bench.run("tokio::time::sleep(0ms)", 1, "sleeps", || {
        runtime.block_on(async { tokio::time::sleep(std::time::Duration::ZERO).await })
    });
    // The scan reads every process's environ: its cost grows with them.
    let processes = std::fs::read_dir("/proc").map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .count()
    });
    bench.run(
        &format!("marked_processes/{processes}-processes"),
        processes as u64,
        "processes",
        || firedrill::process::marked_processes("no-such-run"),
    );
    bench.finish();
}
