//! `firedrill history [--scenario NAME] [--dir DIR]`.

use std::path::Path;

use crate::error::{EXIT_OK, Error};

/// Prints the table of past runs and the trend per drill. Journals that
/// cannot be read are named on stderr and skipped.
pub(super) fn history(dir: &Path, scenario: Option<&str>) -> Result<i32, Error> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::NotRunsDir(dir.to_owned()));
    }
    let scan = crate::history::scan_with_warnings(dir);
    for warning in &scan.warnings {
        eprintln!("warning: {warning}");
    }
    if scan.runs.is_empty() && scan.unfinished.is_empty() {
        println!("No runs recorded in {}.", dir.display());
        return Ok(EXIT_OK);
    }
    print!(
        "{}",
        crate::history::render_all(&scan.runs, &scan.unfinished, scenario)
    );
    Ok(EXIT_OK)
}
