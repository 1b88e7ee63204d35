//! `firedrill report RUN_DIR --format ...`: a past run re-rendered from its journal.

use std::io::{self, Write as _};
use std::path::Path;

use crate::cli::ReportFormat;
use crate::error::{EXIT_OK, Error};
use crate::journal::Journal;

/// Prints the report of a finished run to stdout.
pub(super) fn report(run_dir: &Path, format: ReportFormat) -> Result<i32, Error> {
    if !run_dir.join("journal.json").is_file() {
        return Err(Error::NoJournal {
            run_dir: run_dir.to_owned(),
            has_events: run_dir.join("events.jsonl").is_file(),
        });
    }
    let journal = Journal::read(run_dir)?;
    let text = crate::report::render(&journal, format);
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(EXIT_OK),
        // A closed pipe (`| head`) is the reader's choice, not an error.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(EXIT_OK),
        Err(source) => Err(Error::Output {
            what: "report",
            source,
        }),
    }
}
