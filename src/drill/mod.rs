//! The drill file format: types, loading with located errors, validation.

mod cycles;
mod diag;
mod load;
mod model;
mod validate;
pub mod yaml;

pub use diag::{FileProblems, Problem};
pub use load::{LoadedDrill, load, parse_source};
pub use model::*;
pub use validate::{BUILTIN_VARS, is_valid_name, is_valid_var_name, known_vars};
