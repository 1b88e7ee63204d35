//! `firedrill plan FILE`: the dependency graph, as text, dot, mermaid or JSON.

use std::io::Write;
use std::path::Path;

use crate::cli::PlanFormat;
use crate::error::{EXIT_OK, Error};

/// Prints the plan of one drill.
pub(super) fn plan(file: &Path, format: PlanFormat) -> Result<i32, Error> {
    let loaded = super::load(file)?;
    let text = match format {
        PlanFormat::Text => crate::plan::render_text(&loaded.drill),
        PlanFormat::Dot => crate::plan::render_dot(&loaded.drill),
        PlanFormat::Mermaid => crate::plan::render_mermaid(&loaded.drill),
        PlanFormat::Json => crate::plan::render_json(&loaded.drill) + "\n",
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(EXIT_OK)
}
