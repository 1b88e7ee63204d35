//! Fence attributes: the `{timeout=2m exit=0 ...}` block after a code fence's language.

use std::time::Duration;

use regex::RegexBuilder;

use crate::duration::parse_duration;
use crate::watch::Pattern;

/// Attribute keys a shell fence accepts, in the order error messages list them.
pub const SUPPORTED_ATTRIBUTES: [&str; 6] = [
    "timeout",
    "exit",
    "stdout_contains",
    "stdout_matches",
    "retries",
    "retry_delay",
];

/// What a code fence says about how its block must behave.
///
/// Written as ```` ```sh {timeout=2m exit=0 stdout_contains="is healthy" retries=3 retry_delay=2s} ````.
/// Values are bare (ending at whitespace, `,` or `}`) or double-quoted; inside quotes
/// `\"` is a quote and `\\` a backslash, and any other backslash is kept as written so
/// that regexes such as `"\d+ members"` need no doubling.
#[derive(Debug, Clone)]
pub struct FenceAttrs {
    /// Time allowed for one attempt of this block; `None` leaves it to the engine's default.
    pub timeout: Option<Duration>,
    /// Expected exit status (0–255, default 0).
    pub exit: i32,
    /// Text the output must contain.
    pub stdout_contains: Option<String>,
    /// Regex the output must match somewhere (multi-line: `^`/`$` match at line ends).
    pub stdout_matches: Option<Pattern>,
    /// How many times to try again after a failed attempt (default 0).
    pub retries: u32,
    /// Pause between attempts (default 1s).
    pub retry_delay: Duration,
}

/// The pause between attempts when a fence does not say.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);

impl Default for FenceAttrs {
    fn default() -> Self {
        FenceAttrs {
            timeout: None,
            exit: 0,
            stdout_contains: None,
            stdout_matches: None,
            retries: 0,
            retry_delay: DEFAULT_RETRY_DELAY,
        }
    }
}

/// Splits a fence info string into its language and whatever follows it.
///
/// The language ends at whitespace or `{`, so both ```` ```sh {x=1} ```` and
/// ```` ```sh{x=1} ```` work.
pub(crate) fn split_info(info: &str) -> (&str, &str) {
    let info = info.trim();
    let end = info
        .find(|c: char| c.is_whitespace() || c == '{')
        .unwrap_or(info.len());
    (&info[..end], info[end..].trim_start())
}

/// Parses the text after the language. Returns every problem found, each as a
/// message without location (the caller knows the fence line).
pub(crate) fn parse_attrs(rest: &str) -> Result<FenceAttrs, Vec<String>> {
    let rest = rest.trim();
    let mut attrs = FenceAttrs::default();
    if rest.is_empty() {
        return Ok(attrs);
    }
    let pairs = lex(rest).map_err(|message| vec![message])?;
    let mut errors = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in &pairs {
        if seen.contains(&key.as_str()) {
            errors.push(format!("fence attribute `{key}` is given twice"));
            continue;
        }
        if let Err(message) = apply(&mut attrs, key, value.as_deref()) {
            errors.push(message);
        }
        if let Some(known) = SUPPORTED_ATTRIBUTES.iter().find(|k| **k == key) {
            seen.push(known);
        }
    }
    if errors.is_empty() {
        Ok(attrs)
    } else {
        Err(errors)
    }
}

/// Reads `{key=value ...}` into pairs; a key without `=` has no value.
fn lex(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut chars = text.chars().peekable();
    if chars.next() != Some('{') {
        return Err(format!(
            "cannot read the fence attributes `{text}`: expected them in braces, like `{{timeout=2m exit=0}}`"
        ));
    }
    let mut pairs = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        match chars.peek() {
            None => {
                return Err(format!(
                    "cannot read the fence attributes `{text}`: missing the closing `}}`"
                ));
            }
            Some('}') => {
                chars.next();
                let trailing: String = chars.collect();
                if !trailing.trim().is_empty() {
                    return Err(format!(
                        "cannot read the fence attributes `{text}`: unexpected `{}` after the closing `}}`",
                        trailing.trim()
                    ));
                }
                return Ok(pairs);
            }
            Some(_) => {}
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' || c == '}' || c == ',' || c == '"' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            let found = chars.peek().copied().unwrap_or(' ');
            return Err(format!(
                "cannot read the fence attributes `{text}`: expected an attribute name, found `{found}`"
            ));
        }
        if chars.peek() != Some(&'=') {
            pairs.push((key, None));
            continue;
        }
        chars.next();
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            let mut value = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.peek() {
                        Some(&next @ ('"' | '\\')) => {
                            value.push(next);
                            chars.next();
                        }
                        _ => value.push('\\'),
                    },
                    other => value.push(other),
                }
            }
            if !closed {
                return Err(format!(
                    "cannot read the fence attributes `{text}`: the quoted value of `{key}` is not closed"
                ));
            }
            value
        } else {
            let mut value = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '}' || c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value
        };
        pairs.push((key, Some(value)));
    }
}

fn apply(attrs: &mut FenceAttrs, key: &str, value: Option<&str>) -> Result<(), String> {
    if !SUPPORTED_ATTRIBUTES.contains(&key) {
        return Err(unknown_key(key));
    }
    let Some(value) = value else {
        return Err(format!(
            "fence attribute `{key}` needs a value, like `{key}={}`",
            example(key)
        ));
    };
    let invalid = |why: String| format!("invalid fence attribute `{key}={value}`: {why}");
    match key {
        "timeout" => {
            let timeout = parse_duration(value).map_err(|error| invalid(error.to_string()))?;
            if timeout.is_zero() {
                return Err(invalid("a timeout must be longer than 0".into()));
            }
            attrs.timeout = Some(timeout);
        }
        "exit" => {
            attrs.exit = match value.parse::<i32>() {
                Ok(code @ 0..=255) => code,
                _ => return Err(invalid("expected an exit status from 0 to 255".into())),
            };
        }
        "stdout_contains" => {
            if value.is_empty() {
                return Err(invalid(
                    "an empty text is in every output, so it checks nothing".into(),
                ));
            }
            attrs.stdout_contains = Some(value.to_string());
        }
        "stdout_matches" => {
            // Output is lines: `^` and `$` match at each line's start and end.
            let regex = RegexBuilder::new(value)
                .multi_line(true)
                .build()
                .map_err(|error| {
                    // The regex crate's message spans several lines; one finding is one line.
                    let message = error.to_string();
                    let flat: Vec<&str> = message.lines().map(str::trim).collect();
                    invalid(format!("not a valid regex: {}", flat.join(" ")))
                })?;
            // The same pattern, searchable on part of a stream.
            attrs.stdout_matches = Some(
                Pattern::new(regex.as_str(), true)
                    .map_err(|error| invalid(format!("not a valid regex: {error}")))?,
            );
        }
        "retries" => {
            attrs.retries = value
                .parse::<u32>()
                .map_err(|_| invalid("expected a whole number, 0 or more".into()))?;
        }
        "retry_delay" => {
            attrs.retry_delay =
                parse_duration(value).map_err(|error| invalid(error.to_string()))?;
        }
        _ => return Err(unknown_key(key)),
    }
    Ok(())
}

fn example(key: &str) -> &'static str {
    match key {
        "timeout" => "2m",
        "exit" => "0",
        "stdout_contains" => "\"is healthy\"",
        "stdout_matches" => "\"[0-9]+ members\"",
        "retries" => "3",
        _ => "2s",
    }
}

fn unknown_key(key: &str) -> String {
    let supported = SUPPORTED_ATTRIBUTES.join(", ");
    match crate::diagnostic::closest(key, SUPPORTED_ATTRIBUTES.iter().copied()) {
        Some(best) => format!(
            "unknown fence attribute `{key}`; did you mean `{best}`? (supported: {supported})"
        ),
        None => format!("unknown fence attribute `{key}` (supported: {supported})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(rest: &str) -> Vec<String> {
        match parse_attrs(rest) {
            Ok(_) => Vec::new(),
            Err(errors) => errors,
        }
    }

    /// Each attribute text gives exactly one error, containing the expected words.
    fn assert_one_error_each(cases: &[(&str, &str)]) {
        for (rest, expected) in cases {
            let found = errors(rest);
            assert!(
                found.len() == 1 && found[0].contains(expected),
                "{rest}: {found:?}"
            );
        }
    }

    #[test]
    fn every_attribute_is_read() -> Result<(), Vec<String>> {
        let attrs = parse_attrs(
            r#"{timeout=2m exit=3 stdout_contains="is \"healthy\"" stdout_matches="\d+ members" retries=4 retry_delay=500ms}"#,
        )?;
        assert_eq!(attrs.timeout, Some(Duration::from_secs(120)));
        assert_eq!(attrs.exit, 3);
        assert_eq!(attrs.stdout_contains.as_deref(), Some(r#"is "healthy""#));
        assert_eq!(
            attrs.stdout_matches.as_ref().map(Pattern::as_str),
            Some(r"\d+ members")
        );
        assert_eq!(attrs.retries, 4);
        assert_eq!(attrs.retry_delay, Duration::from_millis(500));
        Ok(())
    }

    #[test]
    fn defaults_without_attributes() -> Result<(), Vec<String>> {
        for rest in ["", "  ", "{}", "{ }"] {
            let attrs = parse_attrs(rest)?;
            assert_eq!(attrs.timeout, None);
            assert_eq!(attrs.exit, 0);
            assert!(attrs.stdout_contains.is_none() && attrs.stdout_matches.is_none());
            assert_eq!(attrs.retries, 0);
            assert_eq!(attrs.retry_delay, DEFAULT_RETRY_DELAY);
        }
        Ok(())
    }

    #[test]
    fn commas_and_bare_values() -> Result<(), Vec<String>> {
        let attrs = parse_attrs("{timeout=30s, stdout_contains=ok,retries=1}")?;
        assert_eq!(attrs.timeout, Some(Duration::from_secs(30)));
        assert_eq!(attrs.stdout_contains.as_deref(), Some("ok"));
        assert_eq!(attrs.retries, 1);
        Ok(())
    }

    #[test]
    fn language_is_split_from_attributes() {
        assert_eq!(split_info("sh {timeout=1s}"), ("sh", "{timeout=1s}"));
        assert_eq!(split_info("bash{exit=1}"), ("bash", "{exit=1}"));
        assert_eq!(split_info("  console  "), ("console", ""));
        assert_eq!(split_info(""), ("", ""));
    }

    #[test]
    fn misspelt_key_suggests_the_right_one() {
        assert_eq!(
            errors("{timout=2m}"),
            vec![
                "unknown fence attribute `timout`; did you mean `timeout`? (supported: timeout, exit, stdout_contains, stdout_matches, retries, retry_delay)"
            ]
        );
        assert!(errors("{retry=2}")[0].contains("did you mean `retries`?"));
        assert!(
            errors("{colour=red}")[0].starts_with("unknown fence attribute `colour` (supported:")
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        let cases = [
            ("{timeout=soon}", "invalid fence attribute `timeout=soon`"),
            ("{timeout=0s}", "longer than 0"),
            ("{exit=256}", "from 0 to 255"),
            ("{exit=-1}", "from 0 to 255"),
            ("{retries=-1}", "0 or more"),
            ("{retry_delay=2}", "invalid fence attribute `retry_delay=2`"),
            ("{stdout_matches=\"(\"}", "not a valid regex"),
            ("{stdout_contains=\"\"}", "checks nothing"),
            ("{timeout}", "needs a value, like `timeout=2m`"),
            ("{timeout=1s timeout=2s}", "given twice"),
        ];
        assert_one_error_each(&cases);
    }

    #[test]
    fn unparsable_blocks_are_errors() {
        let cases = [
            ("timeout=2m", "expected them in braces"),
            ("{timeout=2m", "missing the closing `}`"),
            ("{stdout_contains=\"open}", "is not closed"),
            ("{exit=0} trailing", "unexpected `trailing`"),
            ("{=3}", "expected an attribute name, found `=`"),
        ];
        assert_one_error_each(&cases);
    }

    #[test]
    fn every_error_in_a_block_is_reported() {
        assert_eq!(errors("{timout=1s exit=x}").len(), 2);
    }
}
