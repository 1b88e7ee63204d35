//! Game days (docs/game-days.md): what people do while a run goes on. `firedrill
//! ack`, `note` and `step` append an event to the run's `events.jsonl` from
//! any terminal; the runner takes them in as they arrive.
//!
//! Safety alongside the runner: every writer of `events.jsonl` takes the
//! same exclusive `flock(2)` and appends one whole line with one `write(2)`
//! on an `O_APPEND` descriptor (see [`crate::event::EventLog`]), so no event
//! is lost, torn or interleaved however many people write at once. A line is
//! bounded ([`crate::event::MAX_LINE`]): longer text is cut, and the command
//! says so.

use std::path::Path;
use std::time::Duration;

use crate::event::{Emitter, Event, EventKind, MAX_LINE, append_line, hold};
use crate::journal::StepMark;

/// Exit code for a refused command (not a run, or a run that has ended).
const REFUSED: i32 = 2;

/// How often the runner looks for what people wrote.
const TAKE_IN_EVERY: Duration = Duration::from_millis(200);

/// The longest text kept from one note (characters).
const MAX_TEXT: usize = 2000;

/// The runner's side: takes people's events in as they arrive, until aborted.
pub async fn take_in(emitter: Emitter) {
    loop {
        tokio::time::sleep(TAKE_IN_EVERY).await;
        emitter.take_in_others();
    }
}

/// `firedrill ack RUN_DIR`.
pub fn ack_command(run_dir: &Path) -> i32 {
    finish(
        append(run_dir, |_| EventKind::Acknowledged {}),
        "acknowledged",
    )
}

/// `firedrill note RUN_DIR TEXT`.
pub fn note_command(run_dir: &Path, text: &str) -> i32 {
    if text.trim().is_empty() {
        eprintln!(
            "error: the note is empty; write what happened, e.g. `firedrill note RUN_DIR \"failed over to eu-west\"`"
        );
        return REFUSED;
    }
    finish(
        append(run_dir, |max| EventKind::Note {
            text: cut(text, max),
        }),
        "noted",
    )
}

/// `firedrill step RUN_DIR N ok|wrong|skipped [--note TEXT]`.
pub fn step_command(run_dir: &Path, step: usize, mark: StepMark, note: Option<&str>) -> i32 {
    finish(
        append(run_dir, |max| EventKind::StepMarked {
            step,
            mark,
            note: note.filter(|n| !n.trim().is_empty()).map(|n| cut(n, max)),
        }),
        &format!("runbook step {step} marked {}", mark.as_str()),
    )
}

fn finish(result: Result<(Event, bool), String>, what: &str) -> i32 {
    match result {
        Ok((event, was_cut)) => {
            if was_cut {
                eprintln!("warning: the text was cut to fit one event line");
            }
            println!(
                "{what} at +{:.1}s ({})",
                event.at_ms as f64 / 1000.0,
                event.time
            );
            0
        }
        Err(why) => {
            eprintln!("error: {why}");
            REFUSED
        }
    }
}

/// The first `max` characters of `text`, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut kept: String = text.chars().take(max).collect();
    kept.push('…');
    kept
}

/// What a run's records say about it, read under the lock.
struct RunState {
    /// The wall-clock time of the run's clock zero.
    start: chrono::DateTime<chrono::Utc>,
    /// The runner's pid (the last `run_started` or `run_resumed`).
    pid: u32,
    /// How the run ended, if it did.
    finished: Option<String>,
    /// Steps of a runbook followed by hand, if one was announced.
    manual_steps: Option<usize>,
}

fn run_state(run_dir: &Path, text: &str) -> Result<RunState, String> {
    let not_a_run = || {
        format!(
            "{} is not a firedrill run: its events.jsonl does not begin with `run_started` \
             (give the directory `firedrill run` printed as `records:`)",
            run_dir.display()
        )
    };
    let mut events = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Event>(line).ok());
    let first = events.next().ok_or_else(not_a_run)?;
    let EventKind::RunStarted { pid, .. } = first.kind else {
        return Err(not_a_run());
    };
    let time = chrono::DateTime::parse_from_rfc3339(&first.time)
        .map_err(|_| not_a_run())?
        .with_timezone(&chrono::Utc);
    let mut state = RunState {
        start: time - chrono::Duration::milliseconds(first.at_ms as i64),
        pid,
        finished: None,
        manual_steps: None,
    };
    for event in events {
        match event.kind {
            EventKind::RunResumed { pid, .. } => state.pid = pid,
            EventKind::RunbookStarted {
                manual: true,
                total,
                ..
            } => state.manual_steps = Some(total),
            EventKind::RunFinished {
                verdict, reason, ..
            } => state.finished = Some(format!("{}: {reason}", verdict.as_str())),
            _ => {}
        }
    }
    Ok(state)
}

fn runner_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Appends the event `make` builds (given the most characters its text may
/// keep) to the run's `events.jsonl`, stamped with the run's clock. Returns
/// the event and whether its text was cut.
fn append(run_dir: &Path, make: impl Fn(usize) -> EventKind) -> Result<(Event, bool), String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let path = run_dir.join("events.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => format!(
                "{} is not a firedrill run: it has no events.jsonl (give the directory `firedrill run` printed as `records:`)",
                run_dir.display()
            ),
            _ => format!("cannot open {}: {error}", path.display()),
        })?;
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let _held = hold(&file).map_err(|error| format!("cannot lock {}: {error}", path.display()))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let state = run_state(run_dir, &String::from_utf8_lossy(&bytes))?;
    if let Some(how) = &state.finished {
        return Err(format!(
            "the run in {} has ended ({how}); nothing can be added to it",
            run_dir.display()
        ));
    }
    if !runner_alive(state.pid) {
        return Err(format!(
            "the run in {} is not going on: its runner (pid {}) is gone without ending it; \
             `firedrill resume {}` continues it",
            run_dir.display(),
            state.pid,
            run_dir.display()
        ));
    }
    let kind = make(MAX_TEXT);
    if let (EventKind::StepMarked { step, .. }, Some(total)) = (&kind, state.manual_steps)
        && (*step == 0 || *step > total)
    {
        return Err(format!(
            "the runbook has {total} steps; give a step number from 1 to {total}"
        ));
    }
    let now = chrono::Utc::now();
    let at_ms = (now - state.start).num_milliseconds().max(0) as u64;
    let stamp = |kind| Event {
        at_ms,
        time: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        kind,
    };
    let mut event = stamp(kind);
    let mut line = serde_json::to_string(&event).map_err(|e| e.to_string())?;
    let mut max = MAX_TEXT;
    let mut was_cut = event.kind != make(usize::MAX);
    while line.len() + 1 > MAX_LINE {
        max /= 2;
        was_cut = true;
        event = stamp(make(max));
        line = serde_json::to_string(&event).map_err(|e| e.to_string())?;
    }
    line.push('\n');
    append_line(&file, &line)
        .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    Ok((event, was_cut))
}

/// `run --surprise WINDOW`: the first fault starts at a moment in
/// `LOW-HIGH` after the steady state was checked, chosen by the run's seed
/// (so `--seed` replays it) and announced to nobody: the run shows and
/// records nothing about it until the fault is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Surprise {
    /// The window as written (`0-20m`).
    pub window: String,
    low: Duration,
    high: Duration,
}

impl Surprise {
    /// Parses `LOW-HIGH`: two durations (`0` alone is allowed), LOW ≤ HIGH.
    pub fn parse(text: &str) -> Result<Surprise, String> {
        let usage = "expected a window `LOW-HIGH` like `0-20m` or `5m-1h`";
        let (low, high) = text
            .split_once('-')
            .ok_or_else(|| format!("--surprise {text:?}: {usage}"))?;
        let bound = |part: &str| match part.trim() {
            "0" => Ok(Duration::ZERO),
            part => crate::duration::parse_duration(part)
                .map_err(|why| format!("--surprise {text:?}: {why} ({usage})")),
        };
        let (low, high) = (bound(low)?, bound(high)?);
        if low > high {
            return Err(format!(
                "--surprise {text:?}: the window ends before it starts; write the earlier moment first"
            ));
        }
        Ok(Surprise {
            window: text.trim().to_owned(),
            low,
            high,
        })
    }

    /// When the first fault starts, after the steady-state check: the same
    /// for the same seed.
    pub fn delay(&self, seed: u64) -> Duration {
        use rand::{Rng, SeedableRng};
        // Its own stream, so the other random choices stay as they were.
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5375_7270_7269_7365);
        let low = self.low.as_millis() as u64;
        let high = self.high.as_millis() as u64;
        Duration::from_millis(rng.random_range(low..=high))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_surprise_window_is_two_durations_and_its_delay_follows_the_seed() {
        let window = Surprise::parse("0-20m").unwrap();
        let delay = window.delay(7);
        assert!(delay <= Duration::from_secs(1200));
        assert_eq!(window.delay(7), delay);
        let fixed = Surprise::parse("2s-2s").unwrap();
        assert_eq!(fixed.delay(1), Duration::from_secs(2));
        for bad in ["20m", "5m-1m", "a-1m", "0-", "-1m", "1-2m"] {
            assert!(Surprise::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_is_cut_at_a_character_boundary_with_a_mark() {
        assert_eq!(cut("héllo", 10), "héllo");
        assert_eq!(cut("héllo", 2), "hé…");
    }
}
