//! The engine: runs a drill's graph against a target and emits events.
//!
//! `run` walks the phases of a run; `dispatch` owns the run's state while
//! the graph runs; `step` is one step's task; `stop` orders the reasons a
//! run stops; `monitor` and `probe` watch the system; `recover` follows
//! runbooks, asking the `operator` with `--interactive`; `task` holds what
//! a step task is given and the steps' outputs; `resume` reads a dead run
//! back.

mod dispatch;
mod manual;
mod monitor;
pub mod operator;
pub mod probe;
pub mod recover;
pub mod resume;
pub mod run;
mod shared;
mod step;
mod stop;
mod task;
