//! Why a run stops early, and which reason wins when several arrive.

use crate::event::{Emitter, EventKind};
use crate::score::Ending;
use tokio::sync::watch;

/// Why a run stops before its graph is done, from weakest to strongest: a
/// new reason replaces the current one only if it is stronger, so "Ctrl-C
/// beats a failed guard" is [`StopReason::rank`], not an accident of the
/// order in which the run looks at things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// The drill cannot be carried out: the target's setup failed, a
    /// service never became ready, the steady state did not hold before the
    /// first fault.
    Error(String),
    /// A guard failed, the halt file appeared, or the target refused a fault.
    Aborted(String),
    /// The target cannot be used any more (the cluster is gone).
    TargetUnavailable(String),
    /// Ctrl-C or SIGTERM: the operator's word is final.
    Interrupted(&'static str),
}

impl StopReason {
    fn rank(&self) -> u8 {
        match self {
            StopReason::Error(_) => 0,
            StopReason::Aborted(_) => 1,
            StopReason::TargetUnavailable(_) => 2,
            StopReason::Interrupted(_) => 3,
        }
    }

    /// Whether this reason replaces `current`.
    pub(crate) fn outranks(&self, current: Option<&StopReason>) -> bool {
        current.is_none_or(|current| self.rank() > current.rank())
    }

    /// Ends the run as an abort (recorded as an `aborted` event).
    fn is_abort(&self) -> bool {
        matches!(
            self,
            StopReason::Aborted(_) | StopReason::TargetUnavailable(_)
        )
    }

    /// How the score sees it.
    pub(crate) fn ending(&self) -> Ending {
        match self {
            StopReason::Error(why) | StopReason::TargetUnavailable(why) => {
                Ending::Error(why.clone())
            }
            StopReason::Aborted(why) => Ending::Aborted(why.clone()),
            StopReason::Interrupted(signal) => Ending::Interrupted((*signal).to_owned()),
        }
    }

    /// What a step that it ended or kept from starting says.
    pub(crate) fn for_steps(&self) -> String {
        match self {
            StopReason::Error(why) => why.clone(),
            StopReason::Aborted(why) | StopReason::TargetUnavailable(why) => {
                format!("run aborted: {why}")
            }
            StopReason::Interrupted(signal) => crate::score::interrupted_by(signal),
        }
    }
}

/// The run's stop reason, owned by the one task that runs the run; the step
/// tasks see it through a watch.
pub(crate) struct Stops {
    current: Option<StopReason>,
    abort_recorded: bool,
    published: watch::Sender<Option<StopReason>>,
    emitter: Emitter,
}

impl Stops {
    pub(crate) fn new(emitter: Emitter) -> (Stops, watch::Receiver<Option<StopReason>>) {
        let (published, seen) = watch::channel(None);
        (
            Stops {
                current: None,
                abort_recorded: false,
                published,
                emitter,
            },
            seen,
        )
    }

    /// Takes `reason` if it outranks the current one. The first abort is
    /// recorded as an `aborted` event, whatever wins in the end.
    pub(crate) fn stop(&mut self, reason: StopReason) {
        if reason.is_abort() && !self.abort_recorded {
            self.abort_recorded = true;
            let why = match &reason {
                StopReason::Aborted(why) | StopReason::TargetUnavailable(why) => why.clone(),
                _ => String::new(),
            };
            self.emitter.emit(EventKind::Aborted { reason: why });
        }
        if reason.outranks(self.current.as_ref()) {
            self.current = Some(reason.clone());
            self.published.send_replace(Some(reason));
        }
    }

    pub(crate) fn current(&self) -> Option<&StopReason> {
        self.current.as_ref()
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.current.is_some()
    }

    /// How the run ends.
    pub(crate) fn ending(&self) -> Ending {
        self.current
            .as_ref()
            .map_or(Ending::Completed, StopReason::ending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stronger_reason_replaces_a_weaker_one_and_never_the_reverse() {
        let order = [
            StopReason::Error("unhealthy".into()),
            StopReason::Aborted("guard".into()),
            StopReason::TargetUnavailable("cluster gone".into()),
            StopReason::Interrupted("SIGINT"),
        ];
        for (i, weaker) in order.iter().enumerate() {
            for stronger in &order[i + 1..] {
                assert!(stronger.outranks(Some(weaker)), "{stronger:?} > {weaker:?}");
                assert!(
                    !weaker.outranks(Some(stronger)),
                    "{weaker:?} < {stronger:?}"
                );
            }
            assert!(weaker.outranks(None));
            // The first of equals stays.
            assert!(!weaker.outranks(Some(weaker)));
        }
    }

    #[test]
    fn the_first_abort_is_recorded_and_the_strongest_reason_ends_the_run() {
        let emitter = Emitter::new(Vec::new());
        let (mut stops, seen) = Stops::new(emitter.clone());
        assert_eq!(stops.ending(), Ending::Completed);
        stops.stop(StopReason::Aborted("guard `db` failed".into()));
        stops.stop(StopReason::Aborted("halt file appeared".into()));
        stops.stop(StopReason::Error("late".into()));
        assert_eq!(stops.ending(), Ending::Aborted("guard `db` failed".into()));
        stops.stop(StopReason::Interrupted("SIGTERM"));
        assert_eq!(stops.ending(), Ending::Interrupted("SIGTERM".into()));
        assert_eq!(*seen.borrow(), Some(StopReason::Interrupted("SIGTERM")));
        let aborted: Vec<_> = emitter
            .events()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Aborted { reason } => Some(reason),
                _ => None,
            })
            .collect();
        assert_eq!(aborted, vec!["guard `db` failed".to_owned()]);
    }
}
