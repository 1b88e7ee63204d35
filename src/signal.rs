//! Signal names as drills write them: `KILL`, `SIGTERM`, `term`.

use nix::sys::signal::Signal;

/// Parses a signal name, with or without the `SIG` prefix, in any case.
pub fn parse_signal(name: &str) -> Option<Signal> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_with_and_without_prefix() {
        assert_eq!(parse_signal("KILL"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("sigterm"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("STOP"), Some(Signal::SIGSTOP));
        assert_eq!(parse_signal("BOGUS"), None);
    }
}
