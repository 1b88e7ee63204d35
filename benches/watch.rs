//! Watching a step's output for its `stdout_contains`/`stdout_matches`
//! (src/watch.rs): 16 MiB of log-like lines fed in 64 KiB reads, as the
//! capped log's pump does, with the marker at the very end so every byte is
//! searched. The cost is paid by the pump while the command prints.

mod harness;

use firedrill::watch::{Pattern, Watch};
use harness::Bench;

const OUTPUT: usize = 16 << 20;
const READ: usize = 64 << 10;

/// Lines such as a restore tool prints, then the marker line.
fn output() -> Vec<u8> {
    let mut text = Vec::with_capacity(OUTPUT + 64);
    let mut line = 0u64;
    while text.len() < OUTPUT {
        text.extend_from_slice(
            format!("2026-12-01T00:00:00Z restore: applied segment {line} of the snapshot\n")
                .as_bytes(),
        );
        line += 1;
    }
    text.extend_from_slice(b"members: 3\nrestore complete\n");
    text
}

fn watched(watch: &Watch, text: &[u8]) -> bool {
    let mut watch = watch.clone();
    for read in text.chunks(READ) {
        watch.feed(read);
    }
    let seen = watch.seen();
    seen.texts.iter().all(|(_, found)| *found) && seen.patterns.iter().all(|(_, found)| *found)
}

fn main() {
    let mut bench = Bench::from_args("watch: checks on a stream of output");
    let text = output();
    let pattern = |source: &str| match Pattern::new(source, true) {
        Ok(pattern) => pattern,
        Err(error) => panic!("{source}: {error}"),
    };
    let cases = [
        (
            "contains",
            Watch::new(&["restore complete".to_owned()], Vec::new()),
        ),
        (
            "line-pattern",
            Watch::new(&[], vec![pattern(r"^members: [0-9]+$")]),
        ),
        (
            "pattern-across-lines",
            Watch::new(&[], vec![pattern(r"members: 3\s+restore complete")]),
        ),
    ];
    for (name, watch) in cases {
        assert!(watched(&watch, &text), "{name}: the marker was not found");
        bench.run(
            &format!("feed/16MiB/{name}"),
            text.len() as u64,
            "bytes",
            || watched(&watch, &text),
        );
    }
    bench.finish();
}
