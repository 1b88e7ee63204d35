//! Step outputs (docs/drill-format.md, step outputs): the `$FIREDRILL_OUTPUT`
//! file a `run` or runbook command appends to, read as CI systems do. One
//! `NAME=value` per line; a multi-line value only in GitHub's form
//! `NAME<<DELIM` … `DELIM`. A name must be `[A-Za-z_][A-Za-z0-9_]*` and not
//! reserved: the run's built-ins and `FIREDRILL_*`/`KIND_*` (a step cannot move
//! WORKDIR, hide processes from the sweep or point later commands at another
//! cluster), and the variables that change how a shell or the loader behaves
//! (`BASH_ENV`, `LD_PRELOAD`, …: an output must not run code in the commands
//! after it). A line that breaks these rules fails the step that wrote it.

use std::collections::BTreeMap;

/// A line of an outputs file that breaks the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("$FIREDRILL_OUTPUT line {line}: {message}")]
pub struct OutputError {
    /// 1-based line number in the file.
    pub line: usize,
    /// What is wrong and how to write it.
    pub message: String,
}

/// Names that change how the commands after a step run, whatever their
/// value: never taken from a step's output.
const SHELL_AND_LOADER: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "IFS",
    "PS4",
    "PROMPT_COMMAND",
    "GLOBIGNORE",
    "CDPATH",
];

/// Whether an output may set `name` (the reserved names of
/// docs/drill-format.md, built-in variables, plus the shell and loader
/// variables above).
fn refused_output_name(name: &str) -> Option<String> {
    let shown = crate::text::clip(name, 200);
    if crate::vars::is_reserved(name) {
        return Some(format!(
            "`{shown}` is reserved: firedrill sets it, a step's output cannot"
        ));
    }
    if SHELL_AND_LOADER.contains(&name) || name.starts_with("LD_") || name.starts_with("BASH_FUNC_")
    {
        return Some(format!(
            "`{shown}` changes how shells or programs start: a step's output cannot set it"
        ));
    }
    None
}

/// Parses an outputs file. Blank lines are skipped; anything else must be
/// `NAME=value` or a `NAME<<DELIM` block.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, OutputError> {
    let mut outputs = BTreeMap::new();
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let error = |message: String| OutputError {
            line: number,
            message,
        };
        let (name, value) = match (line.split_once('='), line.split_once("<<")) {
            // `NAME<<DELIM` when `<<` comes before any `=`.
            (eq, Some((name, delimiter)))
                if eq.is_none_or(|(before, _)| before.len() > name.len()) =>
            {
                check_name(name).map_err(error)?;
                if delimiter.is_empty() {
                    return Err(error(format!(
                        "`{name}<<` needs a delimiter, e.g. `{name}<<EOF`"
                    )));
                }
                let mut value: Vec<&str> = Vec::new();
                loop {
                    match lines.next() {
                        Some((_, body)) if body == delimiter => break,
                        Some((_, body)) => value.push(body),
                        None => {
                            return Err(error(format!(
                                "the value of `{name}` is never ended by a line `{delimiter}`"
                            )));
                        }
                    }
                }
                (name, value.join("\n"))
            }
            (Some((name, value)), _) => {
                check_name(name).map_err(error)?;
                (name, value.to_owned())
            }
            (None, _) => {
                return Err(error(format!(
                    "`{}` is neither `NAME=value` nor `NAME<<DELIM`; a value with several lines is written `NAME<<EOF`, its lines, then `EOF`",
                    crate::text::escape_controls(&crate::text::clip(line, 200))
                )));
            }
        };
        outputs.insert(name.to_owned(), value);
    }
    Ok(outputs)
}

fn check_name(name: &str) -> Result<(), String> {
    if !crate::drill::is_valid_var_name(name) {
        return Err(format!(
            "`{}` is not a variable name: use letters, digits and `_`, not starting with a digit",
            crate::text::escape_controls(&crate::text::clip(name, 200))
        ));
    }
    match refused_output_name(name) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_value_lines_and_blank_lines() {
        let outputs = parse("A=1\n\nB=x=y\nC=\n").unwrap();
        assert_eq!(outputs["A"], "1");
        assert_eq!(outputs["B"], "x=y");
        assert_eq!(outputs["C"], "");
        assert_eq!(outputs.len(), 3);
    }

    #[test]
    fn a_multi_line_value_needs_the_delimiter_form() {
        let outputs = parse("CERT<<EOF\nline 1\nPATH=/evil\nEOF\nX=1\n").unwrap();
        assert_eq!(outputs["CERT"], "line 1\nPATH=/evil");
        assert_eq!(outputs["X"], "1");
        assert!(!outputs.contains_key("PATH"));
        let open = parse("CERT<<EOF\nline 1\n").unwrap_err();
        assert_eq!(open.line, 1);
        assert!(open.message.contains("never ended"), "{open}");
    }

    #[test]
    fn a_line_that_breaks_the_rules_is_an_error_naming_its_line() {
        for (text, line, words) in [
            ("A=1\nnot a line\n", 2, "neither"),
            ("9Z=no\n", 1, "not a variable name"),
            (" A=1\n", 1, "not a variable name"),
            ("A=1\nWORKDIR=/elsewhere\n", 2, "reserved"),
            ("FIREDRILL_RUN_ID=x\n", 1, "reserved"),
            ("KUBECONFIG=/root/.kube/config\n", 1, "reserved"),
            ("KIND_EXPERIMENTAL_PROVIDER=podman\n", 1, "reserved"),
            ("BASH_ENV=/tmp/evil\n", 1, "shells"),
            ("LD_PRELOAD=/tmp/evil.so\n", 1, "shells"),
            ("X<<\n", 1, "delimiter"),
            ("A=\u{1b}[2J\nB\u{1b}=1\n", 2, "\\u{1b}"),
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.message.contains(words), "{text:?}: {error}");
        }
    }
}
