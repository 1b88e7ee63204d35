//! The engine: runs a drill's graph against a target and emits events.

mod manual;
mod monitor;
pub mod probe;
pub mod recover;
pub mod resume;
pub mod run;
mod schedule;
mod shared;
