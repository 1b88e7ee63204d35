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

/// Signals whose default action ends a process: each ends a run the way
/// Ctrl-C does (docs/cli.md, exit codes) — reverts, evidence, journal, the
/// sweep, exit 130 — instead of killing the runner with nothing cleaned up (a
/// closed terminal or ssh session sends SIGHUP).
const TERMINATING: &[tokio::signal::unix::SignalKind] = &[
    tokio::signal::unix::SignalKind::interrupt(),
    tokio::signal::unix::SignalKind::terminate(),
    tokio::signal::unix::SignalKind::hangup(),
    tokio::signal::unix::SignalKind::quit(),
    tokio::signal::unix::SignalKind::user_defined1(),
    tokio::signal::unix::SignalKind::user_defined2(),
    tokio::signal::unix::SignalKind::alarm(),
];

/// The first terminating signal that arrived, once [`terminating`] caught
/// one: the reason line names it.
static RECEIVED: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// The name of the first terminating signal caught (`SIGTERM`), if any.
pub fn received() -> Option<&'static str> {
    RECEIVED.get().copied()
}

/// Catches every terminating signal from now on; resolves at the first one
/// with its name, which [`received`] returns from then on. Call from within
/// a tokio runtime.
pub fn terminating() -> impl std::future::Future<Output = &'static str> {
    let mut streams: Vec<(tokio::signal::unix::Signal, tokio::signal::unix::SignalKind)> =
        TERMINATING
            .iter()
            .filter_map(|kind| tokio::signal::unix::signal(*kind).ok().map(|s| (s, *kind)))
            .collect();
    async move {
        if streams.is_empty() {
            return std::future::pending().await;
        }
        let kind = first_of(&mut streams).await;
        let name = Signal::try_from(kind.as_raw_value()).map_or("a signal", Signal::as_str);
        *RECEIVED.get_or_init(|| name)
    }
}

/// The first of several signal streams to deliver.
async fn first_of(
    streams: &mut [(tokio::signal::unix::Signal, tokio::signal::unix::SignalKind)],
) -> tokio::signal::unix::SignalKind {
    std::future::poll_fn(|cx| {
        for (stream, kind) in streams.iter_mut() {
            if stream.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready(*kind);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Restores the default action of SIGPIPE (the Rust runtime ignores it, so
/// `println!` panics when the reader has gone: `firedrill completions zsh |
/// head -3`). For commands that only print: they then end quietly, as `cat`
/// does. Never for a run, which must revert and sweep whatever happens to
/// its stdout.
pub fn quiet_on_closed_stdout() {
    use nix::sys::signal::{SigHandler, signal};
    // SAFETY: installing SIG_DFL runs no code of ours in a signal context;
    // it is called once, at start, before any thread exists.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
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
