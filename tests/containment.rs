//! Containment (issue 10): a drill, its step outputs, its run directory and
//! signals at bad moments cannot turn firedrill against its host. Each test
//! runs the real binary as an attacker would and checks the world outside:
//! canary files outside WORKDIR, processes left alive (read from /proc) and
//! the journal.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_nothing_left, firedrill, run_command, run_drill, write_drill};

/// A canary outside every WORKDIR: a file that must keep its bytes.
struct Canary {
    dir: tempfile::TempDir,
}

const CANARY_TEXT: &[u8] = b"the host's own data: must survive every drill\n";

impl Canary {
    fn new() -> Canary {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("canary"), CANARY_TEXT).unwrap();
        Canary { dir }
    }
    fn file(&self) -> String {
        self.dir.path().join("canary").display().to_string()
    }
    fn dir(&self) -> String {
        self.dir.path().display().to_string()
    }
    /// Another file outside, with the same text.
    fn add(&self, name: &str) {
        std::fs::write(self.dir.path().join(name), CANARY_TEXT).unwrap();
        let list = self.dir.path().join(".names");
        let mut names = std::fs::read_to_string(&list).unwrap_or_default();
        if !names.lines().any(|n| n == name) {
            names.push_str(name);
            names.push('\n');
            std::fs::write(list, names).unwrap();
        }
    }
    fn assert_intact(&self) {
        let names = std::fs::read_to_string(self.dir.path().join(".names")).unwrap_or_default();
        for name in names.lines().chain(["canary"]) {
            let path = self.dir.path().join(name);
            match std::fs::read(&path) {
                Ok(bytes) => assert_eq!(
                    bytes,
                    CANARY_TEXT,
                    "{} outside WORKDIR was changed",
                    path.display()
                ),
                Err(error) => panic!("{} outside WORKDIR is gone: {error}", path.display()),
            }
        }
    }
}

/// Waits for a child with a deadline far beyond any honest run: a hang is
/// reported as a failure (and the child's group killed) instead of hanging
/// the test suite.
fn wait_or_hang(mut child: Child, what: &str) -> std::process::Output {
    let limit = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > limit {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.kill();
            panic!("{what}: firedrill hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The process started by `command`, in a process group of its own so that
/// a hang can be ended whole.
fn spawn_grouped(mut command: Command) -> Child {
    command
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A corrupt fault on `name`, which the setup step `make` prepares in WORKDIR.
fn corrupt_drill(make: &str, name: &str) -> String {
    format!(
        r#"
version: 1
name: corrupt-escape
objectives: {{rto: 30s}}
steps:
  - id: make
    timeout: 10s
    run: {make}
  - id: damage
    needs: [make]
    timeout: 10s
    fault: {{corrupt: {{path: "${{WORKDIR}}/{name}", bytes: 16}}}}
  - id: fix
    needs: [damage]
    recover: {{run: "true"}}
"#
    )
}

fn run_spawned(yaml: &str, what: &str) -> common::Run {
    let dir = tempfile::tempdir().unwrap();
    write_drill(dir.path(), yaml);
    let output = wait_or_hang(spawn_grouped(run_command(dir.path())), what);
    let run_dir = dir.path().join("run");
    common::Run {
        dir,
        output,
        run_dir,
    }
}

fn assert_refused(run: &common::Run, step: &str, words: &str) {
    assert_ne!(run.code(), 0, "{}", run.explain());
    let damage = run.step(step);
    assert_eq!(damage["status"], "failed", "{damage}");
    let detail = damage["detail"].as_str().unwrap();
    assert!(detail.contains(words), "{detail}");
    assert!(run.journal()["faults"].as_array().unwrap().is_empty());
}

#[test]
fn corrupt_does_not_write_through_a_final_symlink() {
    let canary = Canary::new();
    let run = run_spawned(
        &corrupt_drill(
            &format!("ln -s '{}' \"$WORKDIR/flink\"", canary.file()),
            "flink",
        ),
        "corrupt through a symlink",
    );
    canary.assert_intact();
    assert_refused(&run, "damage", "symbolic link");
    assert_nothing_left(&run);
}

#[test]
fn corrupt_does_not_write_through_a_hard_link() {
    let canary = Canary::new();
    let run = run_spawned(
        &corrupt_drill(
            &format!("ln '{}' \"$WORKDIR/hlink\"", canary.file()),
            "hlink",
        ),
        "corrupt through a hard link",
    );
    canary.assert_intact();
    assert_refused(&run, "damage", "hard link");
    assert_nothing_left(&run);
}

#[test]
fn corrupt_refuses_a_fifo_instead_of_hanging() {
    let run = run_spawned(
        &corrupt_drill("mkfifo \"$WORKDIR/pipe\"", "pipe"),
        "corrupt on a FIFO",
    );
    assert_refused(&run, "damage", "FIFO");
    assert_nothing_left(&run);
}

#[test]
fn corrupt_refuses_a_link_to_dev_zero_instead_of_reading_it() {
    let run = run_spawned(
        &corrupt_drill("ln -s /dev/zero \"$WORKDIR/zero\"", "zero"),
        "corrupt on /dev/zero",
    );
    assert_refused(&run, "damage", "symbolic link");
    assert_nothing_left(&run);
}

#[test]
fn delete_refuses_a_symlink_to_a_directory_outside() {
    let canary = Canary::new();
    let run = run_spawned(
        &format!(
            r#"
version: 1
name: delete-escape
objectives: {{rto: 30s}}
steps:
  - id: make
    run: ln -s '{}' "$WORKDIR/dir"
  - id: damage
    needs: [make]
    fault: {{delete: {{path: ["${{WORKDIR}}/dir/canary", "${{WORKDIR}}/dir"]}}}}
  - id: fix
    needs: [damage]
    recover: {{run: "true"}}
"#,
            canary.dir()
        ),
        "delete through a symlink",
    );
    canary.assert_intact();
    assert_refused(&run, "damage", "symbolic link");
    assert_nothing_left(&run);
}

/// While twenty `delete` faults remove files inside `$WORKDIR/a`, the
/// attacker swaps `a` for a symlink to the outside and back, as fast as the
/// kernel allows: checking a path and then deleting it would, sooner or
/// later, delete the same names outside. (A check that sees the symlink
/// refuses and ends the run, so the attack gets several runs.)
#[test]
fn delete_has_no_window_between_check_and_delete() {
    let canary = Canary::new();
    for _ in 0..30 {
        race_deletes_against_a_swapped_directory(&canary);
        canary.assert_intact();
    }
}

fn race_deletes_against_a_swapped_directory(canary: &Canary) {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    let files = 50;
    for n in 0..files {
        canary.add(&format!("f{n}"));
    }
    let mut steps = String::new();
    for n in 0..files {
        steps.push_str(&format!(
            "  - id: delete-{n}\n    needs: [make]\n    fault: {{delete: {{path: \"${{WORKDIR}}/a/f{n}\"}}}}\n"
        ));
    }
    let needs: Vec<String> = (0..files).map(|n| format!("delete-{n}")).collect();
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        &format!(
            r#"
version: 1
name: delete-race
objectives: {{rto: 30s}}
steps:
  - id: make
    run: |
      mkdir "$WORKDIR/a" && for n in $(seq 0 {last}); do echo x > "$WORKDIR/a/f$n"; done
      ln -s '{outside}' "$WORKDIR/l" && touch "${{T}}/ready"
      while [ ! -e "${{T}}/go" ]; do sleep 0.05; done
{steps}  - id: fix
    needs: [{needs}]
    recover: {{run: "true"}}
"#,
            last = files - 1,
            outside = canary.dir(),
            needs = needs.join(", ")
        ),
    );
    let mut command = run_command(dir.path());
    command.args(["--parallel", "8"]);
    let mut child = spawn_grouped(command);
    assert!(
        common::wait_for(&dir.path().join("ready")),
        "the setup step did not run"
    );
    let work = dir.path().join("run/work");
    let (a, l) = (work.join("a"), work.join("l"));
    std::fs::write(dir.path().join("go"), "").unwrap();
    let limit = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() && Instant::now() < limit {
        for _ in 0..1000 {
            let _ = renameat2(AT_FDCWD, &a, AT_FDCWD, &l, RenameFlags::RENAME_EXCHANGE);
        }
    }
    let output = wait_or_hang(child, "delete race");
    let run = common::Run {
        dir,
        output,
        run_dir: work.parent().unwrap().to_path_buf(),
    };
    assert_nothing_left(&run);
}

#[test]
fn corrupt_bytes_are_bounded_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        &corrupt_drill("echo data > \"$WORKDIR/f\"", "f").replace("16", "4294967296"),
    );
    let output = firedrill()
        .arg("validate")
        .arg(dir.path().join("drill.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("4294967296"), "{stderr}");
}

/// A drill that passes quickly and does nothing outside its WORKDIR.
const QUICK: &str = r#"
version: 1
name: quick
objectives: {rto: 30s}
steps:
  - id: break
    fault: {run: "true"}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#;

/// A drill that runs until interrupted, its pid written to `${T}/step.pid`
/// (renamed into place: a signal right after the file appears finds it
/// whole).
const LONG: &str = r#"
version: 1
name: long
objectives: {rto: 30s}
steps:
  - id: break
    fault: {run: "true"}
  - id: linger
    needs: [break]
    timeout: 10m
    run: echo $$ > "${T}/step.pid.new"; mv "${T}/step.pid.new" "${T}/step.pid"; exec sleep 600
  - id: fix
    needs: [linger]
    recover: {run: "true"}
"#;

#[test]
fn run_refuses_a_run_dir_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(dir.path(), QUICK);
    // `--run-dir ~`: a directory that holds the user's own `work`.
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("work")).unwrap();
    std::fs::write(home.join("work/thesis.tex"), "years of work").unwrap();
    let output = firedrill()
        .current_dir(dir.path())
        .args(["run", "drill.yaml", "--halt-file", "halt", "--run-dir"])
        .arg(&home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(home.join("work/thesis.tex")).unwrap(),
        "years of work"
    );
    assert!(!home.join("events.jsonl").exists());
}

#[test]
fn two_runs_raced_into_one_directory_make_one_run() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(dir.path(), QUICK);
    // Each runner stops itself before it starts, and all are let go at once.
    let runs = 8;
    let children: Vec<Child> = (0..runs)
        .map(|_| {
            let runner = run_command(dir.path());
            let mut command = Command::new("/bin/sh");
            command
                .current_dir(dir.path())
                .arg("-c")
                .arg("kill -STOP $$; exec \"$0\" \"$@\"")
                .arg(runner.get_program())
                .args(runner.get_args());
            spawn_grouped(command)
        })
        .collect();
    for child in &children {
        while !stopped(child.id()) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    for child in &children {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGCONT,
        )
        .unwrap();
    }
    let codes: Vec<Option<i32>> = children
        .into_iter()
        .map(|child| wait_or_hang(child, "raced runs").status.code())
        .collect();
    let events = std::fs::read_to_string(dir.path().join("run/events.jsonl")).unwrap();
    let starts = events
        .lines()
        .filter(|l| l.contains("\"run_started\""))
        .count();
    assert_eq!(starts, 1, "{codes:?}\n{events}");
    assert_eq!(
        codes.iter().filter(|c| **c == Some(0)).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == Some(2)).count(),
        runs - 1,
        "{codes:?}"
    );
}

/// Whether a process is stopped (state `T` in /proc).
fn stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
}

#[test]
fn clean_removes_no_workdir_outside_the_run_dir_it_is_given() {
    let canary = Canary::new();
    let dir = tempfile::tempdir().unwrap();
    write_drill(dir.path(), QUICK);
    let run = common::run_in(dir, &["--keep"]);
    assert_eq!(run.code(), 0, "{}", run.explain());
    // A crafted (or copied) run directory: its events name a WORKDIR elsewhere.
    let events = run.run_dir.join("events.jsonl");
    let recorded = run.run_dir.join("work").display().to_string();
    let text = std::fs::read_to_string(&events).unwrap();
    let text = text.replace(
        &format!("\"workdir\":\"{recorded}\""),
        &format!("\"workdir\":\"{}\"", canary.dir()),
    );
    assert!(text.contains(&canary.dir()));
    std::fs::write(&events, text).unwrap();
    let output = firedrill().arg("clean").arg(&run.run_dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    canary.assert_intact();
    assert!(
        !run.run_dir.join("work").exists(),
        "the run's own WORKDIR stays"
    );
}

/// `clean` on a live run whose binary is installed under another name: the
/// runner is alive (same pid, same start time), so nothing is ended.
#[test]
fn clean_knows_a_live_runner_by_pid_and_start_time_not_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(dir.path(), LONG);
    let renamed = dir.path().join("drillrunner");
    std::fs::copy(env!("CARGO_BIN_EXE_firedrill"), &renamed).unwrap();
    let mut command = Command::new(&renamed);
    command.current_dir(dir.path()).args([
        "run",
        "drill.yaml",
        "--run-dir",
        "run",
        "--halt-file",
        "halt",
    ]);
    let child = spawn_grouped(command);
    let step_pid = dir.path().join("step.pid");
    assert!(common::wait_for(&step_pid), "the long step did not start");
    let output = firedrill()
        .arg("clean")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let step = common::read_pids(&step_pid)[0];
    let step_alive = common::alive(step);
    common::interrupt(&child);
    let finished = wait_or_hang(child, "interrupted run");
    assert!(step_alive, "clean ended a live run's step: {stderr}");
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("alive"), "{stderr}");
    assert_eq!(finished.status.code(), Some(130));
    assert!(!common::alive(step));
}

#[test]
fn vars_and_var_flags_cannot_set_reserved_names() {
    for (name, value) in [
        ("WORKDIR", "/elsewhere"),
        ("FIREDRILL_RUN_ID", "hidden"),
        ("KUBECONFIG", "/root/.kube/config"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_drill(
            dir.path(),
            &QUICK.replace(
                "objectives:",
                &format!("vars:\n  OTHER: fine\n  {name}: {value}\nobjectives:"),
            ),
        );
        let output = firedrill()
            .current_dir(dir.path())
            .args(["validate", "drill.yaml"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("`{name}` is reserved")),
            "{stderr}"
        );
        assert!(stderr.contains("drill.yaml:6"), "{name}: no line: {stderr}");
        // The same name from the command line.
        write_drill(dir.path(), QUICK);
        let output = firedrill()
            .current_dir(dir.path())
            .args([
                "run",
                "drill.yaml",
                "--halt-file",
                "halt",
                "--run-dir",
                "run",
            ])
            .arg("--var")
            .arg(format!("{name}={value}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "--var {name}: {stderr}");
        assert!(stderr.contains(name), "{stderr}");
        assert!(!dir.path().join("run").exists(), "the run started");
    }
    // Nor a service's own `env:` (the marker there would hide it from the sweep).
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        &QUICK.replace(
            "objectives:",
            "services:\n  s: {run: 'sleep 600', env: {FIREDRILL_RUN_ID: hidden}}\nobjectives:",
        ),
    );
    let output = firedrill()
        .current_dir(dir.path())
        .args(["validate", "drill.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`FIREDRILL_RUN_ID` is reserved"),
        "{stderr}"
    );
}

/// A step output whose value holds a newline injects reserved names in
/// today's `NAME=value` reading: WORKDIR moved to the outside, KUBECONFIG
/// pointed at another cluster's file, BASH_ENV sourced by later bash.
#[test]
fn a_step_output_cannot_inject_reserved_or_shell_variables() {
    let canary = Canary::new();
    for injected in [
        format!("WORKDIR={}", canary.dir()),
        format!("KUBECONFIG={}", canary.file()),
        format!("BASH_ENV={}/evil.sh", canary.dir()),
    ] {
        let run = run_drill(
            &format!(
                r#"
version: 1
name: inject
objectives: {{rto: 30s}}
steps:
  - id: produce
    run: |
      printf 'touch "%s/sourced"\n' '{outside}' > '{outside}/evil.sh'
      echo "NAME=$(printf 'x\n{injected}')" >> "$FIREDRILL_OUTPUT"
  - id: consume
    needs: [produce]
    fault:
      run: bash -c 'echo "$KUBECONFIG" > "${{T}}/seen"; touch "$WORKDIR/written"'
  - id: fix
    needs: [consume]
    recover: {{run: "true"}}
"#,
                outside = canary.dir()
            ),
            &[],
        );
        let _ = std::fs::remove_file(canary.dir.path().join("evil.sh"));
        canary.assert_intact();
        for left in ["written", "sourced"] {
            assert!(
                !canary.dir.path().join(left).exists(),
                "{injected}: a later command ran with the injected variable"
            );
        }
        let produce = run.step("produce");
        assert_eq!(produce["status"], "failed", "{injected}: {produce}");
        assert!(
            produce["detail"].as_str().unwrap().contains("line 2"),
            "{produce}"
        );
        assert!(!run.path("seen").exists(), "{injected}: the fault ran");
        assert_nothing_left(&run);
    }
}

#[test]
fn a_multi_line_output_is_passed_whole_in_the_delimiter_form() {
    let run = run_drill(
        r#"
version: 1
name: heredoc
objectives: {rto: 30s}
steps:
  - id: produce
    run: printf 'CERT<<EOF\nline one\nWORKDIR=/not/a/var\nEOF\n' >> "$FIREDRILL_OUTPUT"
  - id: consume
    needs: [produce]
    fault: {run: 'printf "%s" "$CERT" > "${T}/cert"; echo "$WORKDIR" > "${T}/workdir"'}
  - id: fix
    needs: [consume]
    recover: {run: "true"}
"#,
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.explain());
    assert_eq!(
        std::fs::read_to_string(run.path("cert")).unwrap(),
        "line one\nWORKDIR=/not/a/var"
    );
    let workdir = std::fs::read_to_string(run.path("workdir")).unwrap();
    assert_eq!(
        workdir.trim(),
        run.run_dir.join("work").display().to_string()
    );
}

/// Every signal that ends a process ends a run the way Ctrl-C does: the
/// revert runs, the journal is written, nothing is left, exit 130.
#[test]
fn every_terminating_signal_ends_a_run_like_ctrl_c() {
    use nix::sys::signal::Signal;
    for signal in [
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGTERM,
        Signal::SIGINT,
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_drill(
            dir.path(),
            &LONG.replace(
                r#"fault: {run: "true"}"#,
                r#"fault: {run: "true", revert: 'touch "${T}/reverted"'}"#,
            ),
        );
        let child = spawn_grouped(run_command(dir.path()));
        let step_pid = dir.path().join("step.pid");
        assert!(
            common::wait_for(&step_pid),
            "{signal}: the step did not start"
        );
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let output = wait_or_hang(child, signal.as_str());
        let run = common::Run {
            output,
            run_dir: dir.path().join("run"),
            dir,
        };
        assert_eq!(run.code(), 130, "{signal}: {}", run.explain());
        assert!(run.path("reverted").exists(), "{signal}: no revert");
        assert_eq!(run.step("linger")["status"], "interrupted", "{signal}");
        // The reason line names the signal that arrived.
        let reason = run.journal()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            reason.starts_with(&format!("interrupted by {}", signal.as_str())),
            "{signal}: {reason}"
        );
        assert!(!common::alive(common::read_pids(&step_pid)[0]), "{signal}");
        assert_nothing_left(&run);
    }
}

/// LONG, its lingering step starting with `start` (a background process).
fn long_starting(start: &str) -> String {
    LONG.replace(r#"run: echo $$"#, &format!("run: {start}echo $$"))
}

/// `clean` of the run in `dir`, then whether `pid` was alive after it
/// (killed then, so no test leaves it behind).
fn clean_and_reap(dir: &Path, pid: u32) -> (std::process::Output, bool) {
    let output = firedrill()
        .arg("clean")
        .arg(dir.join("run"))
        .output()
        .unwrap();
    let alive_after = common::alive(pid);
    if alive_after {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    (output, alive_after)
}

/// A step's background process scrubs its environment (`env -i`), the
/// runner dies (SIGKILL): `clean` still ends it, by the process group the
/// run recorded.
#[test]
fn clean_ends_processes_that_scrubbed_their_environment() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        &long_starting(r#"env -i sleep 600 & echo $! > "${T}/scrubbed.pid"; "#),
    );
    let mut child = spawn_grouped(run_command(dir.path()));
    let step_pid = dir.path().join("step.pid");
    assert!(common::wait_for(&step_pid), "the step did not start");
    let scrubbed = common::read_pids(&dir.path().join("scrubbed.pid"))[0];
    // The runner dies without cleaning up (only the runner: its children live on).
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        common::alive(scrubbed),
        "the scrubbed process died with the runner"
    );
    let (output, alive_after) = clean_and_reap(dir.path(), scrubbed);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        !alive_after,
        "clean left the scrubbed process {scrubbed} alive"
    );
    assert!(!common::alive(common::read_pids(&step_pid)[0]));
    assert!(!dir.path().join("run/work").exists());
}

/// A step starts a daemon that clears its environment and leaves the
/// step's session (`env -i setsid`), the runner dies (SIGKILL): the runner
/// had recorded it among its descendants, so `clean` ends it.
#[test]
fn clean_ends_a_daemon_that_left_the_session_without_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        &long_starting(r#"env -i setsid sleep 4242 & echo $! > "${T}/daemon.pid"; "#),
    );
    let mut child = spawn_grouped(run_command(dir.path()));
    let step_pid = dir.path().join("step.pid");
    assert!(common::wait_for(&step_pid), "the step did not start");
    let daemon = common::read_pids(&dir.path().join("daemon.pid"))[0];
    let recorded = dir.path().join("run/descendants");
    let seen = (0..400).any(|_| {
        let text = std::fs::read_to_string(&recorded).unwrap_or_default();
        let found = text
            .lines()
            .any(|line| line.split(' ').nth(1) == Some(&daemon.to_string()));
        if !found {
            std::thread::sleep(Duration::from_millis(50));
        }
        found
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let (output, alive_after) = clean_and_reap(dir.path(), daemon);
    assert!(seen, "the runner never recorded the daemon {daemon}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        !alive_after,
        "clean left the daemon {daemon} alive: {stdout}"
    );
}

/// A foreign process: its own session, started by nobody's run.
fn foreign_sleep() -> Child {
    Command::new("setsid")
        .args(["sleep", "3333"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// Ticks after boot when `pid` started (`/proc/PID/stat`, field 22).
fn start_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[19].parse().unwrap()
}

/// Runs LONG in `dir` and SIGKILLs the runner once its step runs: the
/// step.pid file the step wrote.
fn dead_run(dir: &Path) -> std::path::PathBuf {
    write_drill(dir, LONG);
    let mut child = spawn_grouped(run_command(dir));
    let step_pid = dir.join("step.pid");
    assert!(common::wait_for(&step_pid), "the step did not start");
    child.kill().unwrap();
    child.wait().unwrap();
    step_pid
}

/// Resumes the dead run in `dir` until its step runs again (its step.pid
/// reappears), then Ctrl-C: the output and its stderr.
fn resume_until_the_step_runs(dir: &Path, step_pid: &Path) -> (std::process::Output, String) {
    std::fs::remove_file(step_pid).unwrap();
    let resumed = spawn_grouped({
        let mut command = firedrill();
        command.current_dir(dir).arg("resume").arg(dir.join("run"));
        command
    });
    let started = common::wait_for(step_pid);
    common::interrupt(&resumed);
    let output = wait_or_hang(resumed, "resume");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(started, "resume did not run the step again: {stderr}");
    (output, stderr)
}

/// Appends a crafted event to a run's `events.jsonl`.
fn append_event(run_dir: &Path, event: serde_json::Value) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(run_dir.join("events.jsonl"))
        .unwrap();
    writeln!(file, "{event}").unwrap();
}

/// Ends the foreign processes, saying which `what` had ended.
fn survived(foreign: &mut [Child], what: &str) {
    for child in foreign.iter_mut() {
        let pid = child.id();
        let alive = common::alive(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert!(alive, "{what} ended the foreign process {pid}");
    }
}

/// A recorded pid that is someone else's now (a reboot, a wrap-around):
/// `clean` and `resume` leave it alone. One recorded without a start time
/// (as an older version or a crafted line records it), one with another
/// start time: both are foreign sessions, found alive in /proc afterwards.
#[test]
fn clean_and_resume_never_end_a_foreign_process_under_a_recorded_pid() {
    let dir = tempfile::tempdir().unwrap();
    let step_pid = dead_run(dir.path());
    let run_dir = dir.path().join("run");
    let mut foreign = vec![foreign_sleep(), foreign_sleep()];
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    append_event(
        &run_dir,
        serde_json::json!({"at_ms": 1, "time": now, "event": "process_started",
            "what": "step linger", "pid": foreign[0].id(), "owner": {"of": "step", "step": "linger"}}),
    );
    append_event(
        &run_dir,
        serde_json::json!({"at_ms": 1, "time": now, "event": "process_started",
            "what": "step linger", "pid": foreign[1].id(), "started": start_of(foreign[1].id()) + 1,
            "owner": {"of": "step", "step": "linger"}}),
    );
    // resume: the unfinished step runs again, its old processes end; then Ctrl-C.
    let (_, stderr) = resume_until_the_step_runs(dir.path(), &step_pid);
    for child in &foreign {
        assert!(
            common::alive(child.id()),
            "resume ended a foreign process: {stderr}"
        );
    }
    let output = firedrill().arg("clean").arg(&run_dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    survived(&mut foreign, "clean");
}

/// A run recorded on another boot: `clean` ends nothing by pid, even a pid
/// recorded with the start time the process has now, and says so.
#[test]
fn clean_ends_nothing_by_pid_of_a_run_recorded_on_another_boot() {
    let dir = tempfile::tempdir().unwrap();
    let step_pid = dead_run(dir.path());
    let run_dir = dir.path().join("run");
    let events = run_dir.join("events.jsonl");
    let text = std::fs::read_to_string(&events).unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert!(text.contains(boot.trim()), "run_started records no boot id");
    std::fs::write(
        &events,
        text.replace(boot.trim(), "00000000-0000-0000-0000-000000000000"),
    )
    .unwrap();
    let mut foreign = vec![foreign_sleep()];
    let pid = foreign[0].id();
    append_event(
        &run_dir,
        serde_json::json!({"at_ms": 1, "time": "2026-01-01T00:00:00.000Z",
            "event": "process_started", "what": "step linger", "pid": pid,
            "started": start_of(pid), "owner": {"of": "step", "step": "linger"}}),
    );
    let output = firedrill().arg("clean").arg(&run_dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("another boot"), "{stdout}");
    // The step still ran under the run's marker: that one is ended.
    assert!(!common::alive(common::read_pids(&step_pid)[0]), "{stdout}");
    survived(&mut foreign, "clean");
}

/// The runner dies while writing an event: `events.jsonl` ends inside a
/// UTF-8 character. `clean` and `resume` read it anyway, and `resume`
/// starts its events on a line of their own.
#[test]
fn a_damaged_last_event_is_tolerated_and_not_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(dir.path(), LONG);
    let mut child = spawn_grouped(run_command(dir.path()));
    let step_pid = dir.path().join("step.pid");
    assert!(common::wait_for(&step_pid), "the step did not start");
    child.kill().unwrap();
    child.wait().unwrap();
    let events = dir.path().join("run/events.jsonl");
    let mut damaged = std::fs::read(&events).unwrap();
    damaged.extend_from_slice(b"{\"at_ms\":1,\"event\":\"note\",\"text\":\"caf\xc3");
    std::fs::write(&events, &damaged).unwrap();

    // resume: continues (the long step runs again), then Ctrl-C.
    let (output, stderr) = resume_until_the_step_runs(dir.path(), &step_pid);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let bytes = std::fs::read(&events).unwrap();
    let lines: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let bad: Vec<String> = lines
        .iter()
        .filter(|l| serde_json::from_slice::<serde_json::Value>(l).is_err())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert_eq!(bad.len(), 1, "resume wrote onto the damaged line: {bad:?}");
    let run = common::Run {
        output,
        run_dir: dir.path().join("run"),
        dir,
    };
    assert_nothing_left(&run);
    // clean reads the same file.
    let output = firedrill().arg("clean").arg(&run.run_dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

/// The halt file appears while services are still starting: the run stops
/// there (aborted, exit 3), it does not wait for them to become ready.
#[test]
fn the_halt_file_is_honoured_while_services_start() {
    let run = run_spawned(
        r#"
version: 1
name: halt-at-start
objectives: {rto: 30s}
services:
  slow:
    run: touch "${T}/halt"; exec sleep 600
    ready: {command: 'test -f "${T}/never"', interval: 100ms}
    ready_timeout: 10m
steps:
  - id: break
    fault: {run: 'touch "${T}/fault-ran"'}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
        "halt file while services start",
    );
    assert_eq!(run.code(), 3, "{}", run.explain());
    assert!(!run.path("fault-ran").exists());
    let journal = run.journal();
    assert_eq!(journal["verdict"], "aborted");
    assert!(
        journal["reason"].as_str().unwrap().contains("halt"),
        "{journal}"
    );
    assert_nothing_left(&run);
}

/// Three services ignore SIGTERM: teardown gives them one grace period
/// together, not one each. Measured on tokio's paused clock (it jumps to
/// the next timer whenever nothing else can run), so the machine's load
/// does not matter.
#[tokio::test(start_paused = true)]
async fn services_that_ignore_sigterm_share_one_grace_period() {
    use firedrill::target::{RunContext, Target};
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().display();
    let services = ["a", "b", "c"]
        .map(|name| {
            let spec = firedrill::target::local::ServiceSpec {
                run: format!("trap '' TERM; touch {t}/{name}; exec sleep 600"),
                env: Default::default(),
                cwd: None,
            };
            (name.to_owned(), spec)
        })
        .into_iter()
        .collect();
    let target = firedrill::target::local::LocalTarget::new(services);
    let ctx = RunContext {
        run_id: "grace".into(),
        run_dir: dir.path().join("run"),
        workdir: dir.path().join("work"),
        scenario_dir: dir.path().to_path_buf(),
        env: Default::default(),
        seed: 1,
        emitter: firedrill::event::Emitter::new(Vec::new()),
    };
    target.setup(&ctx).await.unwrap();
    for name in ["a", "b", "c"] {
        assert!(
            common::wait_for(&dir.path().join(name)),
            "{name} did not start"
        );
    }
    let before = tokio::time::Instant::now();
    target.teardown(&ctx, false).await;
    let waited = before.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "teardown waited {waited:?} of paused time: one grace period each"
    );
}

/// A command probe that prints a megabyte: read while it runs (a full pipe
/// would block it until its timeout), judged on the tail that is kept.
#[test]
fn a_probe_that_prints_a_megabyte_does_not_time_out() {
    let run = run_drill(
        r#"
version: 1
name: loud-probe
objectives: {rto: 30s}
probes:
  loud:
    command: head -c 1000000 /dev/zero | tr '\0' x; echo; echo healthy
    expect: {exit: 0, stdout_contains: healthy}
    timeout: 3s
steady_state: [loud]
steps:
  - id: break
    fault: {run: "true"}
  - id: fix
    needs: [break]
    recover: {run: "true"}
"#,
        &[],
    );
    let journal = run.journal();
    assert_ne!(journal["verdict"], "error", "{}", run.explain());
    assert_nothing_left(&run);
}

#[test]
fn durations_that_overflow_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        &QUICK.replace("rto: 30s", "rto: 1h99999999999999999m"),
    );
    let output = firedrill()
        .current_dir(dir.path())
        .args(["validate", "drill.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("1h99999999999999999m"), "{stderr}");
}

/// `firedrill completions zsh | head -3`: the reader goes away; commands
/// that only print end quietly (no panic message, no exit 101).
#[test]
fn printing_commands_end_quietly_when_stdout_is_closed() {
    use std::os::unix::process::ExitStatusExt;
    let valid = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid");
    let empty = tempfile::tempdir().unwrap();
    let cases: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["completions".into(), "zsh".into()],
        vec!["schema".into()],
        vec!["history".into(), "--dir".into(), empty.path().into()],
        vec!["validate".into(), valid.into()],
    ];
    for args in cases {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let output = firedrill()
            .args(&args)
            .stdout(Stdio::from(write))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            output.status.signal() == Some(libc::SIGPIPE) || output.status.code() == Some(0),
            "{args:?}: {:?} {stderr}",
            output.status
        );
    }
}

/// A step prints terminal escape sequences (clear the screen, set the
/// window title): the terminal output and report.md show them escaped.
#[test]
fn control_characters_from_step_output_are_shown_escaped() {
    let run = run_drill(
        r#"
version: 1
name: escapes
objectives: {rto: 30s}
steps:
  - id: break
    fault: {run: "true"}
  - id: fix
    needs: [break]
    recover: {run: 'printf "\033[2J\033]0;pwned\007 cleared\n"; exit 1'}
"#,
        &[],
    );
    assert_eq!(run.code(), 1, "{}", run.explain());
    let report = std::fs::read_to_string(run.run_dir.join("report.md")).unwrap();
    assert!(report.contains("cleared"), "{report}");
    for (what, text) in [
        ("stdout", run.stdout()),
        ("stderr", run.stderr()),
        ("report.md", report.clone()),
    ] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{what} holds raw control characters: {text:?}"
        );
    }
    assert!(report.contains("\\u{1b}[2J"), "{report}");
}

/// `validate DIR` does not follow a symlink loop (the same drill validated
/// dozens of times) and never opens a FIFO named `*.yaml` (it would block
/// forever); `runbook lint /dev/zero` does not read without end.
#[test]
fn validate_and_lint_read_regular_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let valid = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid/minimal.yaml");
    std::fs::copy(valid, dir.path().join("minimal.yaml")).unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
    let output = wait_or_hang(
        spawn_grouped({
            let mut command = firedrill();
            command.arg("validate").arg(dir.path());
            command
        }),
        "validate a directory with a symlink loop",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(stdout.matches("ok:").count(), 1, "{stdout}");

    nix::unistd::mkfifo(&dir.path().join("pipe.yaml"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let output = wait_or_hang(
        spawn_grouped({
            let mut command = firedrill();
            command.arg("validate").arg(dir.path());
            command
        }),
        "validate a directory with a FIFO",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");

    let output = wait_or_hang(
        spawn_grouped({
            let mut command = firedrill();
            command.args(["runbook", "lint", "/dev/zero"]);
            command
        }),
        "lint /dev/zero",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

#[test]
fn a_probe_interval_has_a_floor() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        &QUICK.replace(
            "objectives:",
            "probes:\n  hot: {command: \"true\", interval: 0ms}\nobjectives:",
        ),
    );
    let output = firedrill()
        .current_dir(dir.path())
        .args(["validate", "drill.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("interval"), "{stderr}");
}

/// The most a log capped at 64K may hold: the cap and the line saying
/// what was dropped.
const CAPPED_64K: u64 = 64 * 1024 + 200;

/// Runs the drill in `dir` with logs capped at 64K; once `${T}/printed`
/// exists (the loud command has printed everything and is still running),
/// checks `log`'s size on disk, then lets the drill go on (`${T}/go`).
/// Returns the run's output and the largest size seen while it ran.
fn run_loud(dir: &Path, log: &str, what: &str) -> (std::process::Output, u64) {
    let mut command = run_command(dir);
    command.env("FIREDRILL_LOG_LIMIT", "64K");
    let mut child = spawn_grouped(command);
    let log = dir.join("run/logs").join(log);
    let mut largest = 0;
    let limit = Instant::now() + Duration::from_secs(120);
    while !dir.join("printed").exists() && child.try_wait().unwrap().is_none() {
        largest = largest.max(std::fs::metadata(&log).map_or(0, |m| m.len()));
        assert!(Instant::now() < limit, "{what}: never printed");
        std::thread::sleep(Duration::from_millis(20));
    }
    largest = largest.max(std::fs::metadata(&log).map_or(0, |m| m.len()));
    std::fs::write(dir.join("go"), "").unwrap();
    (wait_or_hang(child, what), largest)
}

/// A step that prints 50 MB leaves a log of its head and tail, saying what
/// was dropped (FIREDRILL_LOG_LIMIT sets the cap), and the log never held
/// more than that, not even while the step ran.
#[test]
fn step_logs_are_capped_while_the_step_runs() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        &QUICK.replace(
            r#"fault: {run: "true"}"#,
            r#"fault: {run: "echo first; head -c 50000000 /dev/zero | tr '\\0' x; echo; echo last >&2; touch ${T}/printed; while [ ! -f ${T}/go ]; do sleep 0.05; done"}"#,
        ),
    );
    let (output, largest) = run_loud(dir.path(), "break.log", "loud step");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        largest <= CAPPED_64K,
        "the log held {largest} bytes while the step ran"
    );
    let log = std::fs::read(dir.path().join("run/logs/break.log")).unwrap();
    assert!(
        log.len() as u64 <= CAPPED_64K,
        "the log holds {} bytes",
        log.len()
    );
    let text = String::from_utf8_lossy(&log);
    assert!(text.starts_with("first\nxxx"), "{}", &text[..100]);
    assert!(
        text.ends_with("xxx\nlast\n"),
        "{}",
        &text[text.len() - 100..]
    );
    assert!(
        text.contains("[firedrill: 49934") && text.contains("bytes of output dropped here"),
        "{}",
        &text[32_000..33_000]
    );
    // Not slowed into its timeout: the step passed, nothing timed out.
    let events = std::fs::read_to_string(dir.path().join("run/events.jsonl")).unwrap();
    assert!(!events.contains("\"timed_out\":true"), "{events}");
}

/// A service that prints for the whole run has a bounded log while it runs
/// and after.
#[test]
fn service_logs_are_capped_while_the_service_runs() {
    let dir = tempfile::tempdir().unwrap();
    write_drill(
        dir.path(),
        &QUICK
            .replace(
                "objectives:",
                "services:\n  loud: {run: \"echo first; head -c 20000000 /dev/zero | tr '\\\\0' x; echo; echo last; touch ${T}/printed; exec sleep 600\", ready: {command: 'test -f ${T}/printed', interval: 50ms}}\nobjectives:",
            )
            .replace(
                r#"fault: {run: "true"}"#,
                r#"fault: {run: "while [ ! -f ${T}/go ]; do sleep 0.05; done"}"#,
            ),
    );
    let (output, largest) = run_loud(dir.path(), "loud.log", "loud service");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        largest <= CAPPED_64K,
        "the service log held {largest} bytes while the service ran"
    );
    let log = std::fs::read(dir.path().join("run/logs/loud.log")).unwrap();
    assert!(
        log.len() as u64 <= CAPPED_64K,
        "the service log holds {} bytes",
        log.len()
    );
    let text = String::from_utf8_lossy(&log);
    assert!(text.starts_with("first\nxxx"));
    assert!(
        text.ends_with("xxx\nlast\n"),
        "{}",
        &text[text.len() - 100..]
    );
    assert!(text.contains("bytes of output dropped here"));
}

/// The runner's peak resident memory (VmHWM, kB) in a run whose
/// steady-state probe fails `polls` times during the outage, each time with
/// a 200 KB line of output, and then heals. Read by the recover step from
/// its parent, the runner, once the probe has healed.
fn peak_after_polls(polls: u32) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), "x".repeat(200_000) + "\n").unwrap();
    write_drill(
        dir.path(),
        &format!(
            r#"
version: 1
name: polls
objectives: {{rto: 30m}}
probes:
  up:
    command: "if [ -f ${{T}}/broken ] && [ ! -f ${{T}}/healed ]; then n=$(cat ${{T}}/count 2>/dev/null || echo 0); echo $((n+1)) > ${{T}}/count; if [ $n -ge {polls} ]; then touch ${{T}}/healed; else cat ${{T}}/big; exit 1; fi; fi"
    interval: 50ms
steady_state: [up]
steps:
  - id: break
    fault: {{run: "touch ${{T}}/broken"}}
  - id: fix
    needs: [break]
    timeout: 30m
    recover: {{run: "while [ ! -f ${{T}}/healed ]; do sleep 0.05; done; grep VmHWM /proc/$PPID/status > ${{T}}/hwm"}}
"#
        ),
    );
    let out = std::fs::File::create(dir.path().join("out")).unwrap();
    let mut command = run_command(dir.path());
    command
        .process_group(0)
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let output = wait_or_hang(command.spawn().unwrap(), "polls");
    let printed = std::fs::read_to_string(dir.path().join("out")).unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        &printed[printed.len().saturating_sub(2000)..]
    );
    let hwm = std::fs::read_to_string(dir.path().join("hwm")).unwrap();
    hwm.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Memory stays flat however many times a probe is polled: what a poll
/// printed is on disk (`events.jsonl`), not kept in the runner. 250 more
/// failed polls of 200 KB each would add 50 MB if it were kept.
#[test]
fn memory_does_not_grow_with_probe_polls() {
    let few = peak_after_polls(10);
    let many = peak_after_polls(260);
    eprintln!("peak memory {few} kB after 10 polls, {many} kB after 260");
    assert!(
        many < few + 10_000,
        "peak memory {few} kB after 10 polls, {many} kB after 260"
    );
}

/// Unmounts a bind mount a test's drill made, when the test ends however
/// it ends (before its directories are removed: they must not be crossed).
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        while Command::new("umount")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
        {}
    }
}

/// Whether `path` is a mount point now, from the mount table.
fn mounted(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.display().to_string();
    table
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(path.as_str()))
}

/// A drill whose step bind-mounts the canary's directory at
/// `$WORKDIR/{at}`, as a runbook mounting a backup volume would.
fn mounting_drill(canary: &Canary, at: &str, fault: &str) -> String {
    format!(
        r#"
version: 1
name: mounts
objectives: {{rto: 30s}}
steps:
  - id: mount
    timeout: 10s
    run: mkdir -p "$WORKDIR/{at}" && mount --bind '{}' "$WORKDIR/{at}"
  - id: damage
    needs: [mount]
    timeout: 10s
    fault: {fault}
  - id: fix
    needs: [damage]
    recover: {{run: "true"}}
"#,
        canary.dir()
    )
}

/// A run of [`mounting_drill`] as root (None otherwise: bind mounts need
/// root). The fields drop in order: the mount is undone before its
/// directories are removed, the canary is checked by the test.
struct MountedRun {
    _unmount: Unmount,
    dir: tempfile::TempDir,
    canary: Canary,
    backup: std::path::PathBuf,
    output: std::process::Output,
}

fn run_mounting(at: &str, fault: &str, args: &[&str]) -> Option<MountedRun> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: bind mounts need root");
        return None;
    }
    let canary = Canary::new();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("run/work").join(at);
    let unmount = Unmount(backup.clone());
    write_drill(dir.path(), &mounting_drill(&canary, at, fault));
    let mut command = run_command(dir.path());
    command.args(args);
    let output = wait_or_hang(spawn_grouped(command), "a drill that mounts");
    canary.assert_intact();
    Some(MountedRun {
        _unmount: unmount,
        dir,
        canary,
        backup,
        output,
    })
}

#[test]
fn removing_workdir_never_crosses_a_mount_and_says_what_it_left() {
    let Some(run) = run_mounting("data/backup", r#"{run: "true"}"#, &[]) else {
        return;
    };
    assert!(
        mounted(&run.backup),
        "the step's mount was undone or crossed"
    );
    let journal = common::read_journal(&run.dir.path().join("run"));
    assert_eq!(
        journal["workdir_left"],
        serde_json::json!([run.backup.display().to_string()]),
        "{journal}"
    );
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&run.output.stdout),
        String::from_utf8_lossy(&run.output.stderr)
    );
    assert!(
        shown.contains(&format!("left {}", run.backup.display())),
        "{shown}"
    );
}

#[test]
fn clean_never_crosses_a_mount_and_fails_naming_it() {
    let Some(run) = run_mounting("backup", r#"{run: "true"}"#, &["--keep"]) else {
        return;
    };
    assert_eq!(
        run.output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.output.stderr)
    );
    let output = firedrill()
        .arg("clean")
        .arg(run.dir.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    run.canary.assert_intact();
    assert!(mounted(&run.backup));
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&run.backup.display().to_string()),
        "{stderr}"
    );
}

#[test]
fn delete_never_crosses_a_mount_inside_workdir() {
    let fault = r#"{delete: {path: "${WORKDIR}/data"}}"#;
    let Some(run) = run_mounting("data/backup", fault, &[]) else {
        return;
    };
    assert_ne!(run.output.status.code(), Some(0));
    let journal = common::read_journal(&run.dir.path().join("run"));
    let damage = common::step_of(&journal, "damage");
    assert_eq!(damage["status"], "failed", "{damage}");
    let detail = damage["detail"].as_str().unwrap();
    assert!(detail.contains("mount point"), "{detail}");
    assert!(
        detail.contains(&run.backup.display().to_string()),
        "{detail}"
    );
}
