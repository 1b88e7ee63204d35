//! `firedrill validate PATH...`: every problem of every drill file.

use std::path::{Path, PathBuf};

use crate::drill;
use crate::error::{EXIT_OK, Error, plural};

/// Drill files named on the command line: files as given, directories
/// searched for `*.yaml` and `*.yml` (recursively, sorted).
pub fn drill_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = files.len();
            collect_yaml(path, &mut files).map_err(|source| Error::ReadDir {
                path: path.clone(),
                source,
            })?;
            if files.len() == before {
                return Err(Error::NoDrillFiles(path.clone()));
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

/// Checks every drill, printing `ok: ...` or its problems as it goes.
pub(super) fn validate(paths: &[PathBuf]) -> Result<i32, Error> {
    let files = drill_files(paths)?;
    let color = super::stderr_color();
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
    if invalid > 0 {
        return Err(Error::InvalidDrills {
            invalid,
            total: files.len(),
            problems,
        });
    }
    println!("{} drill{} valid", files.len(), plural(files.len()));
    Ok(EXIT_OK)
}
