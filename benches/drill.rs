//! Loading, validating and planning drills: `drill::parse_source` (which
//! validates) on generated drills of 10 to 50 000 steps (a chain and a wide
//! fan-out) and on the drills shipped with the repository; then `plan::Graph`
//! and the `firedrill plan` formats on the large ones. Time per step should
//! stay flat from 1k to 50k steps: both are linear.

mod harness;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use firedrill::drill::{Drill, parse_source};
use firedrill::plan::{self, Graph};
use harness::Bench;

/// How the generated steps depend on each other.
#[derive(Clone, Copy)]
enum Shape {
    /// Each step needs the one before it: `n` stages.
    Chain,
    /// One step, then `n - 2` steps that each need it, then one step that
    /// needs them all: 3 stages, one `needs:` list of `n - 2` ids.
    FanOut,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Chain => "chain",
            Shape::FanOut => "fanout",
        }
    }
}

/// A valid drill of `steps` steps: a fault first, a recover last, and
/// between them a mix of `run`, `wait` and `probe` steps with retries,
/// timeouts and variables, so that validation has something to check.
fn generate(shape: Shape, steps: usize) -> String {
    assert!(steps >= 3, "a generated drill has at least 3 steps");
    let mut text = String::from(
        "version: 1\n\
         name: bench\n\
         description: A generated drill for benchmarks.\n\
         vars:\n  DATA: ${WORKDIR}/data\n\
         objectives: {rto: 1m, rpo: 5s, min_score: 80}\n\
         probes:\n\
         \x20 healthy:\n    command: test -f \"$DATA/healthy\"\n    interval: 100ms\n    timeout: 2s\n\
         \x20 port-open:\n    tcp: {address: \"127.0.0.1:18080\"}\n\
         steady_state: [healthy]\n\
         data:\n  write: date +%s%3N > \"$DATA/heartbeat\"\n  read: cat \"$DATA/heartbeat\"\n  every: 1s\n\
         guards: [port-open]\n\
         steps:\n\
         \x20 - id: break\n    fault: {run: 'rm -f \"$DATA/healthy\"', revert: 'touch \"$DATA/healthy\"'}\n",
    );
    let middle = steps - 2;
    for i in 0..middle {
        let need = match (shape, i) {
            (Shape::Chain, 0) | (Shape::FanOut, _) => "break".to_owned(),
            (Shape::Chain, _) => format!("s{}", i - 1),
        };
        let _ = writeln!(text, "  - id: s{i}\n    needs: [{need}]");
        let _ = match i % 4 {
            0 => writeln!(text, "    wait: 10ms"),
            1 => writeln!(text, "    probe: healthy\n    timeout: 30s"),
            2 => writeln!(
                text,
                "    description: Step {i} writes its marker\n    run: echo \"s{i} $RUN_ID\" > \"$DATA/s{i}\"\n    timeout: 10s\n    retries: 2\n    retry_delay: 500ms"
            ),
            _ => writeln!(text, "    run: cat \"$DATA/s{}\"", i - 1),
        };
    }
    let last_needs = match shape {
        Shape::Chain => format!("s{}", middle - 1),
        Shape::FanOut => (0..middle)
            .map(|i| format!("s{i}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let _ = writeln!(
        text,
        "  - id: fix\n    needs: [{last_needs}]\n    recover: {{run: 'touch \"$DATA/healthy\"'}}"
    );
    text
}

/// The drills of the repository: `scenarios/` and the valid test fixtures.
fn shipped_drills() -> Vec<(String, String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for dir in ["scenarios", "tests/fixtures/valid"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| {
                path.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
            })
            .collect();
        paths.sort();
        for path in paths {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let name = format!("{dir}/{}", path.file_name().unwrap_or_default().display());
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            found.push((name, text, parent));
        }
    }
    found
}

fn parse(text: &str, dir: &Path, what: &str) -> Drill {
    match parse_source(text, dir) {
        Ok(drill) => drill,
        Err(problems) => {
            let messages: Vec<String> = problems
                .iter()
                .map(|p| format!("line {}: {}", p.loc.line, p.message))
                .collect();
            panic!("{what} does not validate: {}", messages.join("\n"));
        }
    }
}

fn main() {
    let mut bench = Bench::from_args("drill: load, validate, plan");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));

    let mut large = Vec::new();
    for shape in [Shape::Chain, Shape::FanOut] {
        for steps in [10usize, 100, 1_000, 10_000, 50_000] {
            let text = generate(shape, steps);
            let name = format!("{}-{steps}", shape.name());
            let drill = parse(&text, dir, &name);
            assert_eq!(drill.steps.len(), steps);
            bench.run(
                &format!("parse_source/{name}"),
                steps as u64,
                "steps",
                || parse_source(&text, dir),
            );
            if steps >= 1000 {
                large.push((name, drill));
            }
        }
    }
    for (name, text, parent) in shipped_drills() {
        let drill = parse(&text, &parent, &name);
        bench.run(
            &format!("parse_source/{name}"),
            drill.steps.len() as u64,
            "steps",
            || parse_source(&text, &parent),
        );
    }

    for (name, drill) in &large {
        let steps = drill.steps.len() as u64;
        let graph = Graph::build(drill);
        let stages = graph.stages();
        assert_eq!(
            stages.iter().map(Vec::len).sum::<usize>(),
            drill.steps.len()
        );
        bench.run(&format!("Graph::build/{name}"), steps, "steps", || {
            Graph::build(drill)
        });
        bench.run(&format!("stages/{name}"), steps, "steps", || graph.stages());
        bench.run(&format!("render_text/{name}"), steps, "steps", || {
            plan::render_text(drill)
        });
        bench.run(&format!("render_dot/{name}"), steps, "steps", || {
            plan::render_dot(drill)
        });
        bench.run(&format!("render_json/{name}"), steps, "steps", || {
            plan::render_json(drill)
        });
    }
    bench.finish();
}
