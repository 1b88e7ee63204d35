//! firedrill: game-day disaster-recovery drills.
//!
//! A drill (YAML) becomes a dependency graph of setup steps, fault injections,
//! probes and recovery steps; the engine runs it against a target, follows the
//! recovery runbook exactly as written, and scores the recovery.

pub mod bounded;
pub mod cli;
pub mod cmd;
pub mod diagnostic;
pub mod drill;
pub mod duration;
pub mod engine;
pub mod error;
pub mod event;
pub mod gameday;
pub mod history;
pub mod journal;
pub mod leftovers;
pub mod located;
pub mod logging;
pub mod outputs;
pub mod plan;
pub mod ports;
pub mod process;
pub mod report;
pub mod runbook;
pub mod rundir;
pub mod score;
pub mod signal;
pub mod target;
pub mod text;
pub mod vars;
pub mod watch;
pub mod workdir;
