//! The engine: runs a drill's graph against a target and emits events.

pub mod env;
pub mod event;
mod monitor;
pub mod probe;
pub mod recover;
pub mod resume;
pub mod run;
mod schedule;
mod shared;
pub mod view;
