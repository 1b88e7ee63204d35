//! Human durations as drills and runbooks write them: `500ms`, `30s`, `2m`, `1h30m`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::de;
use serde::{Deserialize, Deserializer, Serialize};

/// Parses a duration such as `500ms`, `30s`, `2m`, `1h30m` or `1m30s500ms`.
///
/// Units are `ms`, `s`, `m`, `h`; every number needs a unit, so `30` is rejected
/// rather than guessed at. The error says what was expected.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad(trimmed));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad(trimmed))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60).ok_or_else(|| too_long(trimmed))?),
            "h" => Duration::from_secs(number.checked_mul(3600).ok_or_else(|| too_long(trimmed))?),
            _ => return Err(bad(trimmed)),
        };
        total = total.checked_add(part).ok_or_else(|| too_long(trimmed))?;
        if total > MAX {
            return Err(too_long(trimmed));
        }
    }
    Ok(total)
}

/// The longest duration a drill may write: every duration is recorded in
/// milliseconds (`u64`) and added to clocks, and nothing in a drill
/// reasonably lasts longer than a year.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

fn too_long(text: &str) -> DurationError {
    DurationError::TooLong(text.to_owned())
}

fn bad(text: &str) -> DurationError {
    DurationError::Invalid(text.to_owned())
}

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was written.
    #[error("expected a duration like `500ms`, `30s`, `2m` or `1h30m`, found an empty value")]
    Empty,
    /// Not a number and unit.
    #[error(
        "expected a duration like `500ms`, `30s`, `2m` or `1h30m` (units ms, s, m, h), found `{0}`"
    )]
    Invalid(String),
    /// Longer than [`MAX`].
    #[error("`{0}` is longer than the longest duration firedrill accepts (365 days)")]
    TooLong(String),
}

/// Formats a duration the way people read it in reports: `640ms`, `41.2s`, `2m05s`.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

/// A duration written as `500ms`, `30s`, `2m`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map(Dur).map_err(|error| {
            // `timeout: 30` is the commonest slip: say which unit to add.
            if text.trim().parse::<u64>().is_ok() {
                de::Error::custom(format!(
                    "{error}; a number needs a unit, e.g. `{}s`",
                    text.trim()
                ))
            } else if text.contains('.') {
                de::Error::custom(format!(
                    "{error}; write fractions with a smaller unit, e.g. `1s500ms` or `1500ms`"
                ))
            } else {
                de::Error::custom(error)
            }
        })
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h))+$",
            "description": "A duration: 500ms, 30s, 2m, 1h30m",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_of_the_spec() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Ok(Duration::from_millis(90_500))
        );
    }

    #[test]
    fn rejects_numbers_without_units_and_unknown_units() {
        for text in ["30", "", "s", "5x", "1.5s", "-1s", "99999999999999999999h"] {
            assert!(parse_duration(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format_duration(Duration::from_millis(640)), "640ms");
        assert_eq!(format_duration(Duration::from_millis(41_200)), "41.2s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }
}
