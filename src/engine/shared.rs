//! State shared by the scheduler, the step tasks and the monitors of a run.

use crate::drill::{Drill, Probe, Revert, Step};
use crate::event::EventKind;
use crate::journal::StepStatus;
use crate::target::{RunContext, Target, TargetError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// How one step ended.
#[derive(Debug, Clone)]
pub(crate) struct StepResult {
    pub(crate) status: StepStatus,
    pub(crate) attempts: u32,
    pub(crate) exit_code: Option<i32>,
    pub(crate) detail: String,
    pub(crate) output_tail: String,
    pub(crate) outputs: BTreeMap<String, String>,
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

/// State shared by the scheduler, step tasks and monitors.
pub(crate) struct Shared {
    pub(crate) drill: Drill,
    pub(crate) target: Arc<dyn Target>,
    pub(crate) ctx: RunContext,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) runbook_continue: bool,
    pub(crate) operator: Option<Arc<crate::engine::recover::Operator>>,
    pub(crate) halt_file: PathBuf,
    pub(crate) abort: watch::Sender<Option<String>>,
    pub(crate) active: Mutex<Vec<Active>>,
    pub(crate) outputs: Mutex<HashMap<String, BTreeMap<String, String>>>,
    pub(crate) step_groups: Mutex<HashMap<String, i32>>,
    /// When each step's first attempt started (run clock, ms).
    pub(crate) step_started: Mutex<HashMap<String, u64>>,
    /// On resume: per recover step, the runbook steps already done.
    pub(crate) resumed_runbook: HashMap<String, std::collections::BTreeSet<usize>>,
    /// Recover steps whose `RunbookStarted` is recorded.
    pub(crate) runbooks_announced: Mutex<HashSet<String>>,
    /// Wall-clock epoch ms of the first fault's start.
    pub(crate) first_fault_epoch_ms: Mutex<Option<u64>>,
    /// Set when a safety check refused a fault or the target is unusable.
    pub(crate) target_failure: Mutex<Option<TargetError>>,
    /// Counts the faults that landed: the monitors poll at once on a change.
    pub(crate) fault_landed: watch::Sender<u64>,
}

impl Shared {
    /// Aborts the run (no further fault starts, running steps end, reverts
    /// run). The first reason wins and is the one recorded as an event.
    pub(crate) fn abort(&self, reason: String) {
        let first = self.abort.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason.clone());
                true
            } else {
                false
            }
        });
        if first {
            self.ctx.emitter.emit(EventKind::Aborted { reason });
        }
    }

    /// A target refused a fault (wrong cluster, path outside WORKDIR) or
    /// cannot be used: remember why, for the verdict, and abort.
    pub(crate) fn target_failed(&self, error: TargetError) {
        let message = error.to_string();
        *self
            .target_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(error);
        self.abort(message);
    }

    pub(crate) fn aborted(&self) -> Option<String> {
        self.abort.borrow().clone()
    }

    pub(crate) fn probe(&self, name: &str) -> Option<&Probe> {
        self.drill.probes.get(name)
    }

    /// Wall-clock ms of the first fault, once one is in.
    pub(crate) fn first_fault_ms(&self) -> Option<u64> {
        *self
            .first_fault_epoch_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Records now as the first fault's start, unless one is recorded;
    /// returns whether this is the first fault.
    pub(crate) fn mark_first_fault(&self) -> bool {
        let mut first = self
            .first_fault_epoch_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if first.is_some() {
            return false;
        }
        *first = Some(chrono::Utc::now().timestamp_millis() as u64);
        true
    }

    /// The environment of a step: the run's, plus the outputs of every step
    /// it needs, directly or not.
    pub(crate) fn step_env(&self, step: &Step) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        let outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = HashSet::new();
        let mut stack: Vec<String> = step.needs.iter().map(|n| n.value.clone()).collect();
        let mut order = Vec::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            order.push(id.clone());
            if let Some(need) = self.drill.step(&id) {
                stack.extend(need.needs.iter().map(|n| n.value.clone()));
            }
        }
        // Nearest needs win: apply the farthest first.
        for id in order.iter().rev() {
            if let Some(values) = outputs.get(id) {
                env.extend(values.clone());
            }
        }
        env
    }
}

/// Waits until a watch changes; forever if its sender is gone.
pub(crate) async fn changed<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
