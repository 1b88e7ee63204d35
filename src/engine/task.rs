//! What the dispatcher hands a step task, and the steps' outputs it keeps:
//! the types `step`, `recover`, `manual` and `dispatch` share, below all
//! four so none of them depends on another for them.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::drill::Step;

/// What a step task is given by the dispatcher.
pub(crate) struct StepTask<'a> {
    /// Its index in the drill.
    pub(crate) index: usize,
    pub(crate) step: &'a Step,
    /// The run's environment plus the outputs of the steps it needs.
    pub(crate) env: BTreeMap<String, String>,
    /// A runbook's first start announces it (not again on resume).
    pub(crate) announce_runbook: bool,
}

/// Which steps each step needs, and what the steps printed to
/// `FIREDRILL_OUTPUT`.
#[derive(Default)]
pub(crate) struct Outputs {
    pub(super) needs: Vec<Vec<usize>>,
    pub(super) values: HashMap<usize, BTreeMap<String, String>>,
}

impl Outputs {
    /// The environment of step `i`: `base`, plus the outputs of every step
    /// it needs, directly or not; the nearest need wins.
    pub(crate) fn env_for(
        &self,
        base: &BTreeMap<String, String>,
        i: usize,
    ) -> BTreeMap<String, String> {
        let mut env = base.clone();
        if self.values.is_empty() {
            return env;
        }
        let mut seen = HashSet::new();
        let mut stack: Vec<usize> = self.needs.get(i).cloned().unwrap_or_default();
        let mut order = Vec::new();
        while let Some(need) = stack.pop() {
            if !seen.insert(need) {
                continue;
            }
            order.push(need);
            stack.extend(self.needs[need].iter().copied());
        }
        for need in order.iter().rev() {
            if let Some(values) = self.values.get(need) {
                env.extend(values.clone());
            }
        }
        env
    }

    /// What step `i` printed, if it succeeded.
    pub(crate) fn of(&self, i: usize) -> Option<&BTreeMap<String, String>> {
        self.values.get(&i)
    }
}
