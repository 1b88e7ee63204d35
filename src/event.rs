//! The one stream a run produces. The terminal view, `events.jsonl`, the
//! journal and the score are all consumers of it (the nextest pattern): the
//! engine never prints.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::journal::{RunbookStepStatus, StepStatus, Verdict};

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
    },
    /// `firedrill resume` took over a run whose runner died.
    RunResumed {
        /// The new runner's pid.
        pid: u32,
        /// When the new runner started (see `RunStarted`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid_started: Option<u64>,
        /// Steps that had finished before.
        finished_steps: usize,
    },
    /// A process was started (services, steps, probes are not listed).
    ProcessStarted {
        /// What it is (`service etcd-1`, `step snapshot`).
        what: String,
        /// Its pid (and process group).
        pid: u32,
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
        /// The first probe that failed, with its output.
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

/// A consumer of events.
pub trait Reporter: Send {
    /// Called for every event, in order.
    fn event(&mut self, event: &Event);
    /// Called once at the end.
    fn finish(&mut self) {}
}

/// Stamps every event with the run clock, keeps it for the record, and hands
/// it to the reporters, in order. The reporters are owned by one thread of
/// their own: whoever emits never waits for a terminal or a file.
#[derive(Clone)]
pub struct Emitter {
    inner: Arc<Mutex<Record>>,
    start: Instant,
    start_wall: chrono::DateTime<chrono::Utc>,
}

/// What the reporters' thread is handed, in order.
enum ToReporters {
    Event(Box<Event>),
    /// Every event before this one has been handed to every reporter.
    Written(std::sync::mpsc::Sender<()>),
}

struct Record {
    events: Vec<Event>,
    /// To the reporters' thread; `None` once finished.
    reporters: Option<std::sync::mpsc::Sender<ToReporters>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Record {
    fn new(reporters: Vec<Box<dyn Reporter>>, events: Vec<Event>) -> Record {
        if reporters.is_empty() {
            return Record {
                events,
                reporters: None,
                thread: None,
            };
        }
        let (tx, rx) = std::sync::mpsc::channel::<ToReporters>();
        let thread = std::thread::Builder::new()
            .name("reporters".to_owned())
            .spawn(move || {
                let mut reporters = reporters;
                for message in rx {
                    match message {
                        ToReporters::Event(event) => {
                            for reporter in reporters.iter_mut() {
                                reporter.event(&event);
                            }
                        }
                        ToReporters::Written(done) => {
                            let _ = done.send(());
                        }
                    }
                }
                for reporter in reporters.iter_mut() {
                    reporter.finish();
                }
            });
        match thread {
            Ok(thread) => Record {
                events,
                reporters: Some(tx),
                thread: Some(thread),
            },
            Err(error) => {
                tracing::warn!(%error, "cannot start the reporters' thread: no live output");
                Record {
                    events,
                    reporters: None,
                    thread: None,
                }
            }
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
    /// An emitter whose clock starts now.
    pub fn new(reporters: Vec<Box<dyn Reporter>>) -> Emitter {
        Emitter {
            inner: Arc::new(Mutex::new(Record::new(reporters, Vec::new()))),
            start: Instant::now(),
            start_wall: chrono::Utc::now(),
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
        let mut record = self.record();
        // Stamped under the lock: the record's order is the clock's order.
        let at_ms = self.now_ms();
        let time = (self.start_wall + chrono::Duration::milliseconds(at_ms as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let event = Event { at_ms, time, kind };
        if let Some(reporters) = &record.reporters {
            let _ = reporters.send(ToReporters::Event(Box::new(event.clone())));
        }
        if let Some(event) = for_memory(event) {
            record.events.push(event);
        }
    }

    /// Returns once every event emitted so far has been handed to every
    /// reporter (`events.jsonl` written and flushed), or after 5 s (a
    /// terminal that does not take output): what must be on disk before
    /// something that cannot happen twice (a fault) starts, so a runner that
    /// dies meanwhile leaves a record `resume` reads.
    ///
    /// It blocks its thread for the moment the reporters need: an async wait
    /// would let a paused test clock run on meanwhile, and a fault starts
    /// seldom.
    pub fn written(&self) {
        let (done, written) = std::sync::mpsc::channel();
        let sent = self
            .record()
            .reporters
            .as_ref()
            .is_some_and(|reporters| reporters.send(ToReporters::Written(done)).is_ok());
        if sent {
            let _ = written.recv_timeout(std::time::Duration::from_secs(5));
        }
    }

    /// Every event so far as the score reads it: not the polls of guards
    /// and of awaited probes, steady-state polls without their detail
    /// (`events.jsonl` has them whole).
    pub fn events(&self) -> Vec<Event> {
        self.record().events.clone()
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

/// Appends each event to `events.jsonl` and flushes it, so a dead runner's
/// records are complete up to its last event.
pub struct JsonlFile {
    file: std::fs::File,
}

impl JsonlFile {
    /// Opens (creates) the file for appending.
    pub fn create(path: &std::path::Path) -> std::io::Result<JsonlFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(JsonlFile { file })
    }
}

impl Reporter for JsonlFile {
    fn event(&mut self, event: &Event) {
        use std::io::Write;
        if let Ok(mut line) = serde_json::to_string(event) {
            line.push('\n');
            let _ = self.file.write_all(line.as_bytes());
            let _ = self.file.flush();
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
