//! The operator at the `--interactive` prompt.

use std::io::{BufRead, Write};
use std::sync::Arc;

/// The operator's answers in `--interactive` (a terminal or a pipe, one a line).
///
/// The lines are read on a thread of their own, not on the runtime's
/// blocking pool: a prompt nobody answers must not hold the end of a run
/// (after Ctrl-C) until Enter is pressed.
pub struct Operator {
    answers: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
}

impl Operator {
    /// Answers read from standard input.
    pub fn stdin() -> Operator {
        Operator::from_reader(std::io::BufReader::new(std::io::stdin()))
    }

    /// Answers from any reader (tests).
    pub fn from_reader(mut reader: impl BufRead + Send + 'static) -> Operator {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let spawned = std::thread::Builder::new()
            .name("operator".to_owned())
            .spawn(move || {
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            let answer = line.trim_end_matches(['\n', '\r']).to_owned();
                            if tx.send(answer).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        if let Err(error) = spawned {
            // No reader: every question finds the end of input.
            tracing::warn!(%error, "cannot start the thread that reads the operator's answers");
        }
        Operator {
            answers: tokio::sync::Mutex::new(rx),
        }
    }

    /// Shows the prompt and waits for the next line; `None` at the end of
    /// input.
    pub(crate) async fn ask_async(self: &Arc<Self>, prompt: &str) -> Option<String> {
        let mut answers = self.answers.lock().await;
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        answers.recv().await
    }
}
