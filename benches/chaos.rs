//! A paired comparison with Chaos Toolkit on the same experiment: N
//! processes (`sh -c true`) one after another, as a firedrill drill (a
//! chain of `run` steps) and as a Chaos Toolkit experiment (a method of
//! `process` actions), at N = 2 and N = 100. Per-step cost is the slope
//! between the two (start-up and the end of a run fall out); the spawn floor is what `sh -c true` costs spawned
//! from Rust; what a tool adds per step is its cost above that floor. The
//! runs alternate (firedrill, Chaos Toolkit, ...) so a busy machine weighs
//! on both alike.
//!
//! Chaos Toolkit is found as `chaos` on PATH or in ~/.local/bin
//! (`pip install chaostoolkit`), or at `FIREDRILL_CHAOS`; without it the
//! comparison is skipped with a message and firedrill's side is still
//! measured. `cargo bench --bench chaos`; `FIREDRILL_BENCH_ROUNDS=N` takes
//! each measurement N times (default 5) and reports medians.

mod runs;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Processes in the long experiment.
const STEPS: usize = 100;

/// Processes in the short experiment (a drill needs a fault and a recovery).
const FEW: usize = 2;

/// The drill: `steps` steps running `true`, each needing the one before;
/// the first is the fault, the last the recovery (a drill has both).
fn drill(steps: usize) -> String {
    let mut text = String::from(
        "version: 1\nname: processes\nobjectives: {rto: 1m, expect_outage: false}\nsteps:\n",
    );
    for i in 0..steps {
        let action = match i {
            0 => "fault: {run: \"true\"}",
            i if i == steps - 1 => "recover: {run: \"true\"}",
            _ => "run: \"true\"",
        };
        let _ = writeln!(text, "  - id: p{i}\n    {action}");
        if i > 0 {
            let _ = writeln!(text, "    needs: [p{}]", i - 1);
        }
    }
    text
}

/// The Chaos Toolkit experiment: `steps` `process` actions in its method.
fn experiment(steps: usize) -> String {
    let actions: Vec<String> = (0..steps)
        .map(|i| {
            format!(
                r#"{{"type": "action", "name": "p{i}", "provider": {{"type": "process", "path": "sh", "arguments": "-c true"}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"version": "1.0.0", "title": "processes", "description": "{steps} processes one after another", "method": [{}]}}"#,
        actions.join(", ")
    )
}

/// `chaos`, if installed.
fn chaos() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FIREDRILL_CHAOS") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("chaos"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let local = PathBuf::from(std::env::var_os("HOME")?).join(".local/bin/chaos");
        local.is_file().then_some(local)
    })
}

/// Wall time of one Chaos Toolkit run of `experiment`, in ms.
fn chaos_run(chaos: &Path, experiment: &Path, dir: &Path) -> f64 {
    let started = Instant::now();
    let status = Command::new(chaos)
        .arg("--no-version-check")
        .arg("--no-log-file")
        .arg("--settings")
        .arg(dir.join("settings.yaml"))
        .arg("run")
        .arg("--journal-path")
        .arg(dir.join("journal.json"))
        .arg(experiment)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    match status {
        Ok(status) if status.success() => wall,
        Ok(status) => panic!("chaos run {} failed: {status}", experiment.display()),
        Err(error) => panic!("cannot run {}: {error}", chaos.display()),
    }
}

/// Wall time of one firedrill run of `drill`, in ms.
fn firedrill_run(drill: &Path, run_dir: &Path) -> f64 {
    let (wall, code) = runs::firedrill_run(drill, run_dir);
    if code != 0 {
        panic!(
            "firedrill run {} exited {code}; its records are in {}",
            drill.display(),
            run_dir.display()
        );
    }
    wall.as_secs_f64() * 1000.0
}

/// What `sh -c true` costs, spawned and waited for from here, in ms.
fn spawn_floor() -> f64 {
    let started = Instant::now();
    for _ in 0..STEPS {
        match Command::new("sh").args(["-c", "true"]).status() {
            Ok(status) if status.success() => {}
            other => panic!("sh -c true: {other:?}"),
        }
    }
    started.elapsed().as_secs_f64() * 1000.0 / STEPS as f64
}

fn write(path: &Path, text: &str) {
    if let Err(error) = std::fs::write(path, text) {
        panic!("cannot write {}: {error}", path.display());
    }
}

fn main() {
    let rounds = runs::rounds();
    let root = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot create a temporary directory: {error}"),
    };
    let dir = root.path();
    for steps in [FEW, STEPS] {
        write(&dir.join(format!("processes-{steps}.yaml")), &drill(steps));
        write(
            &dir.join(format!("processes-{steps}.json")),
            &experiment(steps),
        );
    }
    let chaos = chaos();
    if chaos.is_none() {
        println!(
            "Chaos Toolkit is not installed (`pip install chaostoolkit`, or set FIREDRILL_CHAOS): measuring firedrill alone"
        );
    }
    let (mut floor, mut fd_one, mut fd_all, mut ct_one, mut ct_all) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        floor.push(spawn_floor());
        for (steps, times) in [(FEW, &mut fd_one), (STEPS, &mut fd_all)] {
            let drill = dir.join(format!("processes-{steps}.yaml"));
            times.push(firedrill_run(
                &drill,
                &dir.join(format!("run-{steps}-{round}")),
            ));
        }
        if let Some(chaos) = &chaos {
            for (steps, times) in [(FEW, &mut ct_one), (STEPS, &mut ct_all)] {
                let experiment = dir.join(format!("processes-{steps}.json"));
                times.push(chaos_run(chaos, &experiment, dir));
            }
        }
    }
    let floor = runs::median(&mut floor);
    let per_step = |one: &mut Vec<f64>, all: &mut Vec<f64>| {
        let (one, all) = (runs::median(one), runs::median(all));
        (all, (all - one) / (STEPS - FEW) as f64)
    };
    let (fd_total, fd_step) = per_step(&mut fd_one, &mut fd_all);
    println!();
    println!("## {STEPS} processes one after another ({rounds} rounds, medians)");
    println!();
    println!("spawn floor (`sh -c true` from Rust): {floor:.2} ms per process");
    println!();
    println!("| tool | total, {STEPS} steps | per step | above the spawn floor |");
    println!("|---|---:|---:|---:|");
    println!(
        "| firedrill | {fd_total:.0} ms | {fd_step:.2} ms | {:.2} ms |",
        fd_step - floor
    );
    if chaos.is_some() {
        let (ct_total, ct_step) = per_step(&mut ct_one, &mut ct_all);
        println!(
            "| Chaos Toolkit | {ct_total:.0} ms | {ct_step:.2} ms | {:.2} ms |",
            ct_step - floor
        );
        println!();
        let (fd_above, ct_above) = (fd_step - floor, ct_step - floor);
        if fd_above > 0.05 {
            println!(
                "Chaos Toolkit / firedrill: {:.1}× the total time, {:.1}× the per-step cost above the spawn floor",
                ct_total / fd_total,
                ct_above / fd_above
            );
        } else {
            println!(
                "Chaos Toolkit / firedrill: {:.1}× the total time; firedrill's per-step cost is within the spawn floor's noise, Chaos Toolkit's is {ct_above:.2} ms above it",
                ct_total / fd_total
            );
        }
    }
    println!();
}
