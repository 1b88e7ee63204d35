//! The one stream a run produces. The terminal view, `events.jsonl`, the
//! journal and the score are all consumers of it (the nextest pattern): the
//! engine never prints.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::journal::{RunbookStepStatus, StepMark, StepStatus, Verdict};

/// One thing that happened, when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    /// Wall-clock time (RFC 3339, UTC).
    pub time: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Why a probe was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeRole {
    /// Part of the steady state.
    Steady,
    /// A guard.
    Guard,
    /// Awaited by a `probe` step or a service's `ready`.
    Wait,
    /// A `detect` probe: the team's own monitoring (docs/game-days.md).
    Detect,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The run began.
    RunStarted {
        /// Drill name.
        drill: String,
        /// Run id.
        run_id: String,
        /// Seed of random choices.
        seed: u64,
        /// The drill file.
        scenario: String,
        /// `local` or `kind:<cluster>`.
        target: String,
        /// Where records go.
        run_dir: String,
        /// The per-run work directory.
        workdir: String,
        /// The runner's pid (for `clean`).
        pid: u32,
        /// When the runner started (ticks after boot, `/proc/PID/stat`):
        /// with `pid`, how `clean` and `resume` know it is still alive.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid_started: Option<u64>,
        /// The boot it ran on (`/proc/sys/kernel/random/boot_id`): start
        /// times and pids recorded on another boot name nobody's process
        /// now (docs/cli.md, `clean`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        boot_id: Option<String>,
        /// Objectives, so the score can be computed from events alone.
        rto_ms: u64,
        /// RPO, if any.
        rpo_ms: Option<u64>,
        /// Minimum score.
        min_score: u32,
        /// Steady-state probe names.
        steady_state: Vec<String>,
        /// Whether the drill has a `data:` section.
        has_data: bool,
        /// `objectives.expect_outage`: whether a run that breaks nothing fails
        /// (docs/scoring.md, "Outage observed"). Older records lack it: the
        /// default, true.
        #[serde(default = "yes")]
        expect_outage: bool,
        /// The run's options, reapplied by `resume`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        options: Option<RunOptions>,
        /// The drill and runbook files as they were when the run started:
        /// `resume` refuses to go on with files that changed since.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<FileHash>,
    },
    /// `firedrill resume` took over a run whose runner died.
    RunResumed {
        /// The new runner's pid.
        pid: u32,
        /// When the new runner started (see `RunStarted`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid_started: Option<u64>,
        /// The boot the new runner runs on (see `RunStarted`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        boot_id: Option<String>,
        /// Steps that had finished before.
        finished_steps: usize,
    },
    /// A process was started (services, steps, probes are not listed).
    ProcessStarted {
        /// What it is (`service etcd-1`, `step snapshot`).
        what: String,
        /// Its pid (and process group).
        pid: u32,
        /// When it started (ticks after boot, `/proc/PID/stat`): with the
        /// pid and the run's boot, it names this process and no other.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started: Option<u64>,
        /// Whose it is: `resume` adopts what finished work left running
        /// and ends only what it runs again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<Owner>,
    },
    /// `firedrill resume` found a service of the run as the dead runner
    /// left it.
    ServiceResumed {
        /// Name.
        service: String,
        /// What became of it.
        outcome: ServiceOutcome,
        /// Its pid, if it runs.
        pid: Option<u32>,
        /// Why.
        detail: String,
    },
    /// `firedrill clean` ended what the run left and removed its WORKDIR:
    /// the run cannot be resumed.
    RunCleaned {
        /// Processes it ended.
        ended: usize,
    },
    /// Removing the WORKDIR left something: a mount point a step made inside
    /// it (never crossed, so what it shows stays), or what the file system
    /// refused, and why.
    WorkdirLeft {
        /// What stayed, by path.
        paths: Vec<String>,
        /// Why.
        reason: String,
    },
    /// The run is ending the processes it leaves (services, what steps and
    /// runbooks started): TERM one at a time, KILL after the grace period.
    ProcessesEnding {
        /// How many are still running.
        count: usize,
    },
    /// A service is up (its ready probe passed).
    ServiceReady {
        /// Name.
        service: String,
        /// For how long before the check that passed started no check of
        /// its ready probe was running (ms): the most the polling can have
        /// added to the wait. (A check that waits for the service, as a
        /// health check that hangs until a cluster has a leader, passes as
        /// it becomes ready; how long a check takes is the service's.)
        #[serde(default)]
        unwatched_ms: u64,
    },
    /// A step started (or an attempt of it).
    StepStarted {
        /// Step id.
        step: String,
        /// Action key.
        action: String,
        /// 1-based attempt.
        attempt: u32,
        /// One-line summary.
        summary: String,
    },
    /// A step ended.
    StepFinished {
        /// Step id.
        step: String,
        /// Action key.
        action: String,
        /// How it ended.
        status: StepStatus,
        /// All attempts.
        duration_ms: u64,
        /// Attempts made.
        attempts: u32,
        /// Exit code of the last attempt.
        exit_code: Option<i32>,
        /// Why it failed, was skipped, or what it did.
        detail: String,
        /// Last lines of output.
        output_tail: String,
    },
    /// The steady state was checked before the first fault.
    SteadyStateChecked {
        /// All probes passed.
        ok: bool,
        /// The first probe that failed, with its output; when all passed,
        /// empty, or what there was to check (no `steady_state` defined).
        detail: String,
    },
    /// A fault was injected.
    FaultInjected {
        /// Step id.
        step: String,
        /// Fault kind.
        kind: String,
        /// What it hit.
        targets: Vec<String>,
        /// Extra facts (seed, signal, offsets).
        detail: String,
        /// The target's record of how to undo it (a `target::Undo`), so a
        /// resumed run can. Kept as JSON here: the event stream does not
        /// depend on the targets that use it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        undo: Option<serde_json::Value>,
        /// The runner died while injecting it: it may have half-happened.
        /// It counts as injected (never injected twice) and is reverted.
        #[serde(default, skip_serializing_if = "is_false")]
        interrupted: bool,
    },
    /// A fault was undone.
    FaultReverted {
        /// Step id.
        step: String,
        /// Fault kind.
        kind: String,
        /// Whether the undo worked.
        ok: bool,
        /// What happened.
        detail: String,
    },
    /// A monitored probe's result.
    Probe {
        /// Probe name.
        probe: String,
        /// Why it was checked.
        role: ProbeRole,
        /// Passed.
        ok: bool,
        /// Output or error when it failed.
        detail: String,
    },
    /// A guard failed or the halt file appeared: the run aborts.
    Aborted {
        /// Why.
        reason: String,
    },
    /// A runbook step ended.
    RunbookStep {
        /// The recover step that ran the runbook.
        step: String,
        /// Position in the runbook (0-based).
        index: usize,
        /// Heading.
        title: String,
        /// Heading line.
        line: usize,
        /// How it ended.
        status: RunbookStepStatus,
        /// How long.
        duration_ms: u64,
        /// Shell exit code.
        exit_code: Option<i32>,
        /// The commands.
        command: String,
        /// Last lines of output.
        output_tail: String,
        /// Why it failed.
        detail: String,
        /// Second run of `check: idempotent`: did it succeed again?
        idempotent: Option<bool>,
        /// Operator's note.
        note: Option<String>,
        /// Operator's replacement command.
        deviation: Option<String>,
    },
    /// The runbook a recover step follows.
    RunbookStarted {
        /// Recover step.
        step: String,
        /// Runbook path as written.
        path: String,
        /// Executable steps.
        executable: usize,
        /// All steps.
        total: usize,
        /// Followed by people (`recover: {manual: ...}`), not run by firedrill.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        manual: bool,
        /// The steps' headings, for a runbook followed by hand.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        titles: Vec<String>,
    },
    /// Data loss measured after recovery (docs/scoring.md, measures).
    DataLoss {
        /// Milliseconds lost; `None` if the read failed.
        loss_ms: Option<u64>,
        /// Last heartbeat that survived (epoch ms).
        last_heartbeat_ms: Option<u64>,
        /// What happened.
        detail: String,
    },
    /// A check of the steady state after the recovery: after the graph's
    /// last step (the recovery's first pass), and again after the
    /// `check: idempotent` re-run.
    RecoveryChecked {
        /// The steady state held.
        ok: bool,
        /// Why not.
        detail: String,
        /// This check follows the idempotency re-run, not the first pass.
        #[serde(default)]
        after_rerun: bool,
    },
    /// A person's timestamped note (`firedrill note`, docs/game-days.md).
    Note {
        /// The note as written (control characters kept; shown escaped).
        text: String,
    },
    /// A person acknowledged the incident (`firedrill ack`).
    Acknowledged {},
    /// A person marked a step of the runbook they follow by hand
    /// (`firedrill step`).
    StepMarked {
        /// The runbook step, 1-based as people count.
        step: usize,
        /// How it went.
        mark: StepMark,
        /// Why, if they said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// `run --surprise`: the first fault starts now, this long after the
    /// steady-state check (recorded only when it happens, so nobody learns
    /// the moment from the records before).
    SurpriseFault {
        /// The window as given (`0-20m`).
        window: String,
        /// The chosen delay.
        delay_ms: u64,
    },
    /// The run ended.
    RunFinished {
        /// The verdict.
        verdict: Verdict,
        /// Why, in one sentence.
        reason: String,
        /// Interrupted by Ctrl-C.
        interrupted: bool,
    },
}

fn yes() -> bool {
    true
}

fn is_false(value: &bool) -> bool {
    !value
}

/// The options of `firedrill run` that `resume` reapplies (the seed and the
/// run directory are recorded on their own).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunOptions {
    /// `--var NAME=VALUE`, in order.
    pub vars: Vec<(String, String)>,
    /// `--parallel`.
    pub parallel: usize,
    /// `--keep`.
    pub keep: bool,
    /// `--runbook-continue`.
    pub runbook_continue: bool,
    /// `--halt-file`, absolute.
    pub halt_file: String,
}

/// A file a run depends on, by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    /// Absolute path.
    pub path: String,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

/// Whose a recorded process is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "of", rename_all = "snake_case")]
pub enum Owner {
    /// A service of the local target.
    Service {
        /// Its name.
        name: String,
    },
    /// A step's shell.
    Step {
        /// Step id.
        step: String,
    },
    /// A runbook step of a recover step.
    Runbook {
        /// The recover step.
        step: String,
        /// The runbook step (0-based).
        index: usize,
    },
}

/// What `resume` did with a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceOutcome {
    /// Alive: adopted as it is, not restarted.
    Adopted,
    /// Down, and no fault can have hit it (or it never started): started.
    Restarted,
    /// Down, and a fault may have taken it down: left down, as the fault left it.
    LeftDown,
}

/// A consumer of events.
pub trait Reporter: Send {
    /// Called for every event, in order.
    fn event(&mut self, event: &Event);
    /// Called once at the end.
    fn finish(&mut self) {}
}

/// Stamps every event with the run clock, keeps it for the record, and hands
/// it to the reporters, in order. The reporters are owned by one thread of
/// their own: whoever emits never waits for a terminal or a pipe.
///
/// With an [`EventLog`], the emitter also owns `events.jsonl`: each event is
/// appended synchronously under the log's lock (so it is on disk before
/// `emit` returns: a fault never starts before its `step_started` is), and
/// the events that people's commands (`firedrill note`, `ack`, `step`)
/// appended meanwhile are taken in first, in file order, so the record, the
/// reporters and the score see one order.
#[derive(Clone)]
pub struct Emitter {
    inner: Arc<Mutex<Record>>,
    start: Instant,
    start_wall: chrono::DateTime<chrono::Utc>,
}

struct Record {
    events: Vec<Event>,
    log: Option<EventLog>,
    /// To the reporters' thread; `None` once finished.
    reporters: Option<std::sync::mpsc::Sender<Event>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Record {
    fn new(reporters: Vec<Box<dyn Reporter>>, events: Vec<Event>) -> Record {
        let mut record = Record {
            events,
            log: None,
            reporters: None,
            thread: None,
        };
        if reporters.is_empty() {
            return record;
        }
        let (tx, rx) = std::sync::mpsc::channel::<Event>();
        let thread = std::thread::Builder::new()
            .name("reporters".to_owned())
            .spawn(move || {
                let mut reporters = reporters;
                for event in rx {
                    for reporter in reporters.iter_mut() {
                        reporter.event(&event);
                    }
                }
                for reporter in reporters.iter_mut() {
                    reporter.finish();
                }
            });
        match thread {
            Ok(thread) => {
                record.reporters = Some(tx);
                record.thread = Some(thread);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot start the reporters' thread: no live output");
            }
        }
        record
    }

    /// Keeps `event` and hands it to the reporters.
    fn deliver(&mut self, event: Event) {
        if let Some(reporters) = &self.reporters {
            let _ = reporters.send(event.clone());
        }
        if let Some(event) = for_memory(event) {
            self.events.push(event);
        }
    }
}

/// What the record in memory keeps of an event: all the score reads, no
/// more, so a fast probe over a long run does not grow it by its output.
/// A guard's or an awaited probe's polls are not kept, a steady-state
/// probe's without its detail (the score reads when and whether it
/// passed); `events.jsonl` and the reporters have them whole.
fn for_memory(mut event: Event) -> Option<Event> {
    match &mut event.kind {
        EventKind::Probe {
            role: ProbeRole::Guard | ProbeRole::Wait,
            ..
        } => None,
        EventKind::Probe { detail, .. } => {
            *detail = String::new();
            Some(event)
        }
        _ => Some(event),
    }
}

impl Emitter {
    /// An emitter whose clock starts now (on a whole millisecond of wall
    /// time, so that people's commands, which count from the recorded start,
    /// read the same clock).
    pub fn new(reporters: Vec<Box<dyn Reporter>>) -> Emitter {
        let now = chrono::Utc::now();
        let start_wall = now
            - chrono::Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos() % 1_000_000));
        let start = Instant::now()
            .checked_sub((now - start_wall).to_std().unwrap_or_default())
            .unwrap_or_else(Instant::now);
        Emitter {
            inner: Arc::new(Mutex::new(Record::new(reporters, Vec::new()))),
            start,
            start_wall,
        }
    }

    /// An emitter that continues a run: the clock keeps counting from the
    /// run's original start, and the earlier events are part of the record
    /// (they are not handed to the reporters again).
    pub fn resumed(
        reporters: Vec<Box<dyn Reporter>>,
        earlier: Vec<Event>,
        started: chrono::DateTime<chrono::Utc>,
    ) -> Emitter {
        let elapsed = (chrono::Utc::now() - started).to_std().unwrap_or_default();
        let start = Instant::now()
            .checked_sub(elapsed)
            .unwrap_or_else(Instant::now);
        Emitter {
            inner: Arc::new(Mutex::new(Record::new(
                reporters,
                earlier.into_iter().filter_map(for_memory).collect(),
            ))),
            start,
            start_wall: started,
        }
    }

    /// Writes every event to `log` from now on (and takes in what others
    /// append to it).
    pub fn with_log(self, log: EventLog) -> Emitter {
        self.record().log = Some(log);
        self
    }

    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Milliseconds since the run started.
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// When the run started.
    pub fn started_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.start_wall
    }

    /// Emits an event.
    pub fn emit(&self, kind: EventKind) {
        self.emit_with(|_| kind);
    }

    /// Emits the event `make` builds from every event so far, people's
    /// latest included, with no event slipping in between: the run's last
    /// event is built from exactly what precedes it in the record.
    pub fn emit_with(&self, make: impl FnOnce(&[Event]) -> EventKind) {
        let mut record = self.record();
        // The file lock is held for the file only; the reporters write on
        // their own thread, in the order the emitter's lock gives.
        let (held, taken) = match record.log.as_mut() {
            Some(log) => (log.hold(), log.take_others()),
            None => (None, Vec::new()),
        };
        for event in taken {
            record.deliver(event);
        }
        // Stamped under the lock, never before the last event: the file's
        // order is the clock's order (people's commands read the wall clock,
        // which may be a millisecond ahead of the runner's monotonic one).
        let at_ms = self
            .now_ms()
            .max(record.events.last().map_or(0, |last| last.at_ms));
        let time = (self.start_wall + chrono::Duration::milliseconds(at_ms as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let event = Event {
            at_ms,
            time,
            kind: make(&record.events),
        };
        if let Some(log) = record.log.as_mut() {
            log.append(&event);
        }
        drop(held);
        record.deliver(event);
    }

    /// Takes in what people's commands appended to the log since the last
    /// event: the live view shows a note as it arrives, not at the runner's
    /// next event.
    pub fn take_in_others(&self) {
        let mut record = self.record();
        let taken = match record.log.as_mut() {
            Some(log) => {
                let _held = log.hold();
                log.take_others()
            }
            None => Vec::new(),
        };
        for event in taken {
            record.deliver(event);
        }
    }

    /// Every event so far as the score reads it: not the polls of guards
    /// and of awaited probes, steady-state polls without their detail
    /// (`events.jsonl` has them whole).
    pub fn events(&self) -> Vec<Event> {
        self.record().events.clone()
    }

    /// The events after the first `seen`, for a watcher that reads along.
    pub fn events_after(&self, seen: usize) -> Vec<Event> {
        self.record()
            .events
            .get(seen..)
            .unwrap_or_default()
            .to_vec()
    }

    /// Lets every reporter finish (flush, clear progress bars) and waits
    /// until they have.
    pub fn finish(&self) {
        let thread = {
            let mut record = self.record();
            record.reporters = None;
            record.thread.take()
        };
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// The longest line `events.jsonl` takes from people's commands; their
/// text is cut to fit.
pub const MAX_LINE: usize = 8 * 1024;

/// `events.jsonl`, shared by the runner and people's commands: every writer
/// appends one whole line with one `write(2)` (`O_APPEND`) while holding an
/// exclusive `flock(2)` on the file, so lines are never torn or interleaved
/// and the runner knows which bytes are not its own.
pub struct EventLog {
    file: std::fs::File,
    /// Where the lines the runner has seen (its own and taken-in ones) end.
    seen: u64,
}

/// An exclusive `flock(2)` on an open file, released on drop (drop it
/// before the file).
pub struct Held(std::os::fd::RawFd);

/// Takes the exclusive advisory lock every writer of `events.jsonl` takes.
pub fn hold(file: &std::fs::File) -> std::io::Result<Held> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on an open file descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(Held(file.as_raw_fd()));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: unlocks the lock this guard took, on a descriptor its
        // holder keeps open for the guard's life.
        unsafe { libc::flock(self.0, libc::LOCK_UN) };
    }
}

/// Appends one whole line in one `write(2)`; the caller holds the lock.
pub fn append_line(mut file: &std::fs::File, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let written = file.write(line.as_bytes())?;
    if written != line.len() {
        return Err(std::io::Error::other(format!(
            "only {written} of {} bytes written",
            line.len()
        )));
    }
    Ok(())
}

impl EventLog {
    /// Opens (creates) the file for appending; what it holds already is seen.
    pub fn open(path: &std::path::Path) -> std::io::Result<EventLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        let seen = file.metadata()?.len();
        Ok(EventLog { file, seen })
    }

    fn hold(&self) -> Option<Held> {
        match hold(&self.file) {
            Ok(held) => Some(held),
            Err(error) => {
                tracing::warn!(%error, "cannot lock events.jsonl");
                None
            }
        }
    }

    /// The events others appended since the runner last looked.
    fn take_others(&mut self) -> Vec<Event> {
        use std::os::unix::fs::FileExt;
        let Ok(len) = self.file.metadata().map(|m| m.len()) else {
            return Vec::new();
        };
        if len <= self.seen {
            return Vec::new();
        }
        let mut bytes = vec![0; (len - self.seen) as usize];
        if self.file.read_exact_at(&mut bytes, self.seen).is_err() {
            return Vec::new();
        }
        self.seen = len;
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .filter_map(|line| match serde_json::from_str(line) {
                Ok(event) => Some(event),
                Err(error) => {
                    tracing::warn!(%error, "events.jsonl: a line appended by another writer is not an event");
                    None
                }
            })
            .collect()
    }

    /// Appends the runner's own event and flushes it, so a dead runner's
    /// records are complete up to its last event.
    fn append(&mut self, event: &Event) {
        if let Ok(mut line) = serde_json::to_string(event) {
            line.push('\n');
            match append_line(&self.file, &line) {
                Ok(()) => {
                    self.seen = self
                        .file
                        .metadata()
                        .map_or(self.seen + line.len() as u64, |m| m.len())
                }
                Err(error) => tracing::warn!(%error, "cannot append to events.jsonl"),
            }
        }
    }
}

/// Reads `events.jsonl` back.
///
/// A line that is not an event — the last one cut by a runner killed while
/// writing it, even inside a UTF-8 character — is skipped, not an error.
pub fn read_events(path: &std::path::Path) -> std::io::Result<Vec<Event>> {
    let bytes = std::fs::read(path)?;
    Ok(bytes
        .split(|byte| *byte == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect())
}
