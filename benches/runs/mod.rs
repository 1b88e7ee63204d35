//! What the end-to-end benchmarks share: how many rounds to take, running
//! the built `firedrill` on a drill file, and medians.
//!
//! `cargo bench` passes `--bench`: then every measurement is taken
//! `FIREDRILL_BENCH_ROUNDS` times (default 5) and the median reported.
//! Without it (`cargo test --benches`) each is taken once, as a smoke test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How many times each measurement is taken.
pub fn rounds() -> usize {
    if !std::env::args().any(|arg| arg == "--bench") {
        return 1;
    }
    std::env::var("FIREDRILL_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(5)
}

/// The repository: drills are run from here, as a user would.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `firedrill run DRILL` (the binary this bench was built with) with
/// its records in `run_dir`; returns the wall time and the exit code.
pub fn firedrill_run(drill: &Path, run_dir: &Path) -> (Duration, i32) {
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .arg("run")
        .arg(drill)
        .arg("--run-dir")
        .arg(run_dir)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let wall = started.elapsed();
    match status {
        Ok(status) => (wall, status.code().unwrap_or(-1)),
        Err(error) => panic!("cannot run firedrill: {error}"),
    }
}

/// The median of `values` (which it sorts); 0 if there are none.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
