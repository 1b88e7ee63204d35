//! `firedrill clean RUN_DIR`.

use std::path::Path;

use crate::error::{EXIT_OK, Error};

/// `firedrill clean RUN_DIR`: ends what a dead run left running and removes
/// its WORKDIR. Processes are found by the run's marker in their environment,
/// so a pid reused by an unrelated process is never touched.
pub(super) fn clean(run_dir: &Path) -> Result<i32, Error> {
    // Not a run directory: said before anything is written into it.
    crate::engine::resume::Resume::load(run_dir).map_err(Error::RunDir)?;
    // A live runner (or a `resume`) holds the lock until it ends.
    let _lock = crate::rundir::Lock::take(run_dir).map_err(Error::RunLocked)?;
    let run = crate::engine::resume::Resume::load(run_dir).map_err(Error::RunDir)?;
    if run.runner_alive() && !run.has_finished() {
        return Err(Error::RunnerAlive(run.pid));
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
    let finished = run.has_finished() || run.was_cleaned();
    let (run_id, workdir, started) = (run.run_id, run.workdir, run.started);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let ended = runtime.block_on(async {
        let grace = std::time::Duration::from_secs(5);
        let mut ended = crate::process::sweep(&run_id, grace, false).await;
        // Those that scrubbed their environment: by recorded group and session.
        ended.extend(recorded.end(grace).await);
        ended.sort_unstable();
        ended.dedup();
        ended
    });
    // A kind cluster the run created, only while it is still that cluster.
    let runner = crate::target::kind::runner::SystemRunner::new();
    let cluster = runtime.block_on(crate::target::kind::clean_cluster(run_dir, &runner));
    if let Some(Ok(done)) = &cluster {
        println!("{done}");
    }
    println!(
        "ended {} process{} of run {run_id}",
        ended.len(),
        if ended.len() == 1 { "" } else { "es" }
    );
    // The run cannot go on without its processes and WORKDIR: `resume`
    // and `report` read this.
    if !finished {
        let events = run_dir.join("events.jsonl");
        let recorded = crate::rundir::end_last_line(&events).and_then(|()| {
            // On the run's clock, appended under the lock every writer of
            // events.jsonl takes.
            let emitter = crate::event::Emitter::resumed(Vec::new(), Vec::new(), started)
                .with_log(crate::event::EventLog::open(&events)?);
            emitter.emit(crate::event::EventKind::RunCleaned { ended: ended.len() });
            emitter.finish();
            Ok(())
        });
        if let Err(error) = recorded {
            eprintln!(
                "warning: cannot record the clean in {}: {error}",
                events.display()
            );
        }
    }
    // Only a real directory: a symlink named `work` is removed, not followed,
    // and a mount point inside is left, not crossed.
    if workdir.symlink_metadata().is_ok() {
        let left =
            crate::workdir::remove_workdir(&workdir).map_err(|source| Error::RemoveWorkdir {
                path: workdir.clone(),
                source,
            })?;
        if !left.is_empty() {
            return Err(Error::RemoveWorkdir {
                path: workdir.clone(),
                source: std::io::Error::other(format!(
                    "left {}: another file system is mounted there and is never crossed; unmount it and run `firedrill clean` again",
                    crate::workdir::list_paths(&left)
                )),
            });
        }
        println!("removed {}", workdir.display());
    }
    match cluster {
        Some(Err(error)) => Err(Error::KindCluster(error.to_string())),
        _ => Ok(EXIT_OK),
    }
}
