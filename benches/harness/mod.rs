//! A small std-only benchmark harness (no criterion): warm-up, timed samples,
//! median / p10 / p90 and throughput, printed as one table at the end.
//!
//! `cargo bench` passes `--bench`; then each benchmark is warmed up and timed
//! for about `FIREDRILL_BENCH_SECS` seconds (default 1). Without `--bench`
//! (`cargo test --benches`) every benchmark runs once, as a smoke test.
//! `FIREDRILL_BENCH_REPEAT=N` makes that once N times (`benches/callgrind.sh`
//! subtracts two such runs to count the instructions of one call).
//! A further argument filters benchmarks by substring:
//! `cargo bench --bench drill -- parse_source/chain`; with `--exact` it must
//! be the whole name.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// One measured benchmark.
struct Row {
    name: String,
    samples: usize,
    /// Calls per sample (fast functions are timed in batches).
    batch: u128,
    median: Duration,
    p10: Duration,
    p90: Duration,
    /// Items one call handles (steps, events), and what they are.
    items: u64,
    unit: &'static str,
}

/// Runs benchmarks and collects their rows.
pub struct Bench {
    title: &'static str,
    measure: bool,
    /// Calls of each benchmark when not measuring.
    repeat: u64,
    filter: Option<String>,
    /// The filter is a whole name, not a part of one.
    exact: bool,
    budget: Duration,
    warm_up: Duration,
    rows: Vec<Row>,
}

impl Bench {
    /// Reads the mode and filter from the command line.
    pub fn from_args(title: &'static str) -> Bench {
        let mut measure = false;
        let mut filter = None;
        let mut exact = false;
        for arg in std::env::args().skip(1) {
            if arg == "--bench" {
                measure = true;
            } else if arg == "--exact" {
                exact = true;
            } else if !arg.starts_with('-') {
                filter = Some(arg);
            }
        }
        let budget = std::env::var("FIREDRILL_BENCH_SECS")
            .ok()
            .and_then(|secs| secs.parse::<f64>().ok())
            .filter(|secs| secs.is_finite() && *secs > 0.0)
            .map_or(Duration::from_secs(1), Duration::from_secs_f64);
        let repeat = std::env::var("FIREDRILL_BENCH_REPEAT")
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(1);
        Bench {
            title,
            measure,
            repeat,
            filter,
            exact,
            budget,
            warm_up: budget / 5,
            rows: Vec::new(),
        }
    }

    /// Whether a benchmark of this name is selected.
    pub fn wants(&self, name: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| {
            if self.exact {
                name == f.as_str()
            } else {
                name.contains(f.as_str())
            }
        })
    }

    /// Times `f`; one call handles `items` `unit`s (for the throughput).
    pub fn run<T>(&mut self, name: &str, items: u64, unit: &'static str, mut f: impl FnMut() -> T) {
        if !self.wants(name) {
            return;
        }
        if !self.measure {
            for _ in 0..self.repeat {
                black_box(f());
            }
            println!("{name}: ok");
            return;
        }
        // Warm-up, which also estimates the cost of one call.
        let started = Instant::now();
        let mut calls = 0u64;
        while calls < 3 || started.elapsed() < self.warm_up {
            black_box(f());
            calls += 1;
        }
        let per_call_ns = (started.elapsed().as_nanos() / u128::from(calls)).max(1);
        // Batch calls so a sample lasts at least ~50 µs: Instant's own cost
        // then stays far below the resolution we report.
        let batch = (50_000 / per_call_ns).max(1);
        let wanted = self.budget.as_nanos() / (per_call_ns * batch);
        let samples = wanted.clamp(10, 2000) as usize;
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let start = Instant::now();
            for _ in 0..batch {
                black_box(f());
            }
            let nanos = start.elapsed().as_nanos() / batch;
            times.push(Duration::from_nanos(nanos as u64));
        }
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        let row = Row {
            name: name.to_owned(),
            samples,
            batch,
            median: at(0.5),
            p10: at(0.1),
            p90: at(0.9),
            items,
            unit,
        };
        eprintln!("{}", format_row(&row));
        self.rows.push(row);
    }

    /// Prints the table of every row.
    pub fn finish(self) {
        if !self.measure {
            return;
        }
        println!();
        println!("## {}", self.title);
        println!();
        println!(
            "| {:<40} | {:>10} | {:>10} | {:>10} | {:>22} | {:>11} |",
            "benchmark", "median", "p10", "p90", "throughput (median)", "samples"
        );
        println!(
            "|{:-<42}|{:->12}|{:->12}|{:->12}|{:->24}|{:->13}|",
            "", ":", ":", ":", ":", ":"
        );
        for row in &self.rows {
            println!("{}", format_row(row));
        }
        println!();
    }
}

fn format_row(row: &Row) -> String {
    let samples = if row.batch > 1 {
        format!("{}×{}", row.samples, row.batch)
    } else {
        row.samples.to_string()
    };
    format!(
        "| {:<40} | {:>10} | {:>10} | {:>10} | {:>22} | {:>11} |",
        row.name,
        duration(row.median),
        duration(row.p10),
        duration(row.p90),
        throughput(row.items, row.unit, row.median),
        samples
    )
}

/// A duration with three significant digits and a unit that fits.
fn duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", significant(value))
}

/// Items per second at the given time per call.
fn throughput(items: u64, unit: &str, per_call: Duration) -> String {
    let secs = per_call.as_secs_f64();
    if secs == 0.0 {
        return "-".to_owned();
    }
    let rate = items as f64 / secs;
    let (value, prefix) = if rate >= 1e6 {
        (rate / 1e6, "M ")
    } else if rate >= 1e3 {
        (rate / 1e3, "k ")
    } else {
        (rate, "")
    };
    format!("{} {prefix}{unit}/s", significant(value))
}

fn significant(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}
