//! tracing to stderr: `RUST_LOG` wins, else `--verbose` raises the level.
//! Colours only on a terminal, as everything else firedrill prints
//! ([`crate::text::use_color`]: `NO_COLOR`, `CLICOLOR_FORCE`).
//!
//! While the live progress display is on, log lines are written through it
//! (`MultiProgress::suspend`), so they never tear the bars.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};

use indicatif::MultiProgress;
use tracing_subscriber::EnvFilter;

static PROGRESS: OnceLock<Mutex<Option<MultiProgress>>> = OnceLock::new();

/// Routes log lines through this progress display (or plain stderr with `None`).
pub fn set_progress(progress: Option<MultiProgress>) {
    let slot = PROGRESS.get_or_init(|| Mutex::new(None));
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = progress;
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let progress = PROGRESS
            .get()
            .and_then(|slot| slot.lock().ok().and_then(|p| p.clone()));
        match progress {
            Some(progress) => progress.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Installs the stderr subscriber once.
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "firedrill=warn",
        1 => "firedrill=info",
        2 => "firedrill=debug",
        _ => "firedrill=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_ansi(crate::text::use_color(std::io::stderr().is_terminal()))
        .with_target(false)
        .try_init();
}
