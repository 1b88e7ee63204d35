//! What the tasks of a run share: the run's read-only context, the
//! messages they send the dispatcher, and what a step leaves behind.

use crate::drill::{Drill, Probe, Revert};
use crate::journal::StepStatus;
use crate::target::{RunContext, Target, TargetError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, watch};

use super::stop::StopReason;

/// How one step ended.
#[derive(Debug, Clone)]
pub(crate) struct StepResult {
    pub(crate) status: StepStatus,
    pub(crate) attempts: u32,
    pub(crate) exit_code: Option<i32>,
    pub(crate) detail: String,
    pub(crate) output_tail: String,
    pub(crate) outputs: BTreeMap<String, String>,
    /// The fault it put in, for the revert.
    pub(crate) injected: Option<Active>,
}

impl StepResult {
    pub(crate) fn ok(detail: impl Into<String>) -> StepResult {
        StepResult {
            status: StepStatus::Ok,
            attempts: 1,
            exit_code: None,
            detail: detail.into(),
            output_tail: String::new(),
            outputs: BTreeMap::new(),
            injected: None,
        }
    }
    pub(crate) fn failed(detail: impl Into<String>) -> StepResult {
        StepResult {
            status: StepStatus::Failed,
            ..StepResult::ok(detail)
        }
    }
}

/// A fault that is in, with how to undo it.
#[derive(Debug, Clone)]
pub(crate) struct Active {
    pub(crate) step: String,
    pub(crate) kind: String,
    /// The target's record of how to undo it; an error if a resumed run's
    /// record could not be read back.
    pub(crate) undo: Option<Result<crate::target::Undo, String>>,
    pub(crate) revert: Revert,
}

/// What step tasks, monitors, the halt-file watcher and the signal handler
/// tell the dispatcher.
#[derive(Debug)]
pub(crate) enum Msg {
    /// The run should stop, for this reason.
    Stop(StopReason),
    /// A step's process group is running (step index in the drill).
    ProcessStarted { step: usize, pgid: i32 },
}

/// The read-only context of a run, shared by its tasks. Nothing in it
/// changes once the run is under way, except the first fault's time, which
/// is set once: the state of the run is the dispatcher's alone.
pub(crate) struct Shared {
    pub(crate) drill: Drill,
    pub(crate) target: Arc<dyn Target>,
    pub(crate) ctx: RunContext,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) runbook_continue: bool,
    pub(crate) operator: Option<Arc<crate::engine::operator::Operator>>,
    pub(crate) halt_file: PathBuf,
    /// On resume: per recover step, the runbook steps already done.
    pub(crate) resumed_runbook: HashMap<String, BTreeSet<usize>>,
    /// On resume: services left down as a fault left them (not awaited).
    pub(crate) left_down: BTreeSet<String>,
    /// Wall-clock epoch ms of the first fault's start.
    pub(crate) first_fault_epoch_ms: OnceLock<u64>,
    /// Why the run stops, as the dispatcher decided it.
    pub(crate) stop: watch::Receiver<Option<StopReason>>,
    /// To the dispatcher.
    pub(crate) messages: mpsc::UnboundedSender<Msg>,
    /// Counts the faults that landed (the dispatcher counts them): the
    /// monitors poll at once on a change.
    pub(crate) fault_landed: watch::Sender<u64>,
    /// `run --surprise`: the window and the wait before the first fault.
    pub(crate) surprise: Option<(String, std::time::Duration)>,
}

impl Shared {
    /// Tells the dispatcher; a dispatcher that is gone has nothing to hear.
    pub(crate) fn send(&self, msg: Msg) {
        let _ = self.messages.send(msg);
    }

    /// Asks to abort the run (no further fault starts, running steps end,
    /// reverts run).
    pub(crate) fn abort(&self, reason: String) {
        self.send(Msg::Stop(StopReason::Aborted(reason)));
    }

    /// A target refused a fault (wrong cluster, path outside WORKDIR) or
    /// cannot be used: the run stops.
    pub(crate) fn target_failed(&self, error: TargetError) {
        let message = error.to_string();
        self.send(Msg::Stop(match error {
            TargetError::Unavailable(_) => StopReason::TargetUnavailable(message),
            _ => StopReason::Aborted(message),
        }));
    }

    /// Why the run is stopping, if it is.
    pub(crate) fn stopping(&self) -> Option<StopReason> {
        self.stop.borrow().clone()
    }

    pub(crate) fn probe(&self, name: &str) -> Option<&Probe> {
        self.drill.probes.get(name)
    }

    /// Wall-clock ms of the first fault, once one is in.
    pub(crate) fn first_fault_ms(&self) -> Option<u64> {
        self.first_fault_epoch_ms.get().copied()
    }
}

/// Waits until a watch changes; forever if its sender is gone.
pub(crate) async fn changed<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
