//! Containment (issue 10): a drill, its step outputs, its run directory and
//! signals at bad moments cannot turn firedrill against its host. Each test
//! runs the real binary as an attacker would and checks the world outside:
//! canary files outside WORKDIR, processes left alive (read from /proc) and
//! the journal.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_nothing_left, firedrill, run_command, write_drill};

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
    fn assert_intact(&self) {
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            assert_eq!(
                std::fs::read(entry.path()).unwrap(),
                CANARY_TEXT,
                "{} outside WORKDIR was changed",
                entry.path().display()
            );
        }
        assert!(
            self.dir.path().join("canary").exists(),
            "the canary outside WORKDIR was deleted"
        );
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

/// A step swaps a directory of WORKDIR for a symlink to the outside, as fast
/// as the kernel allows, while twenty `delete` faults remove files inside
/// it: checking the path and then deleting it would, sooner or later, delete
/// the same names outside.
#[test]
fn delete_has_no_window_between_check_and_delete() {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    let canary = Canary::new();
    let files = 20;
    for n in 0..files {
        std::fs::write(canary.dir.path().join(format!("f{n}")), CANARY_TEXT).unwrap();
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
    let ready = dir.path().join("ready");
    assert!(common::wait_for(&ready), "the setup step did not run");
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
    canary.assert_intact();
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
