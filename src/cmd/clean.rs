//! `firedrill clean RUN_DIR`.

use std::path::Path;

use crate::error::{EXIT_OK, Error};

/// `firedrill clean RUN_DIR`: ends what a dead run left running and removes
/// its WORKDIR. Processes are found by the run's marker in their environment,
/// so a pid reused by an unrelated process is never touched.
pub(super) fn clean(run_dir: &Path) -> Result<i32, Error> {
    let run = crate::engine::resume::Resume::load(run_dir).map_err(Error::RunDir)?;
    if run.runner_alive() && !run.has_finished() {
        return Err(Error::RunnerAlive(run.pid));
    }
    let (run_id, workdir) = (run.run_id, run.workdir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let ended = runtime.block_on(crate::process::sweep(
        &run_id,
        std::time::Duration::from_secs(5),
        false,
    ));
    println!(
        "ended {} process{} of run {run_id}",
        ended.len(),
        if ended.len() == 1 { "" } else { "es" }
    );
    if workdir.exists() {
        std::fs::remove_dir_all(&workdir).map_err(|source| Error::RemoveWorkdir {
            path: workdir.clone(),
            source,
        })?;
        println!("removed {}", workdir.display());
    }
    Ok(EXIT_OK)
}
