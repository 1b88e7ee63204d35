//! Recovery by runbook (SPEC §7.1).

use std::sync::Arc;

use crate::drill::{Recover, Step};
use crate::engine::run::{Shared, StepResult};

/// Follows a Markdown runbook step by step.
pub(crate) async fn follow_runbook(
    shared: &Arc<Shared>,
    _step: &Step,
    _recover: &Recover,
) -> StepResult {
    let _ = shared.runbook_continue;
    StepResult::failed("runbook execution is not built yet")
}
