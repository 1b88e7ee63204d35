//! `firedrill completions SHELL`: shell completions from the clap definitions.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{EXIT_OK, Error};

/// Prints the completions for `shell`.
pub(super) fn completions(shell: clap_complete::Shell) -> Result<i32, Error> {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "firedrill",
        &mut std::io::stdout(),
    );
    Ok(EXIT_OK)
}
