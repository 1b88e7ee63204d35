//! The engine: runs a drill's graph against a target and emits events.

pub mod env;
pub mod event;
pub mod probe;
pub mod recover;
pub mod resume;
pub mod run;
pub mod view;
