//! `firedrill schema`: the JSON Schema of the drill format, for editors.

use crate::error::{EXIT_OK, Error};

/// Prints the schema.
pub(super) fn schema() -> Result<i32, Error> {
    let schema = schemars::schema_for!(crate::drill::Drill);
    println!(
        "{}",
        serde_json::to_string_pretty(&schema).unwrap_or_default()
    );
    Ok(EXIT_OK)
}
