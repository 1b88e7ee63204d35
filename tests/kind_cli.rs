//! Every `kind` command line firedrill runs, and those its runbooks and
//! scenarios run, checked against the real `kind` CLI (built by
//! `.ci/install-k8s`): each subcommand exists and takes each flag given.
//! No container engine is needed: only `kind ... --help` runs.
//!
//! The kind target's argv are the ones it really builds: it is driven
//! through setup, a node fault, `delete_cluster`, evidence and teardown
//! with a recording runner and a mock API server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use firedrill::drill::yaml::Located;
use firedrill::event::Emitter;
use firedrill::target::kind::runner::{FakeRunner, Output};
use firedrill::target::kind::{KindFault, KindSpec, KindTarget, NodeFault};
use firedrill::target::kube::NodeSelector;
use firedrill::target::{FaultSpec, RunContext, Target};
use http::{Request, Response};
use kube::client::Body;

mod common;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real `kind`, built by `.ci/install-k8s`.
fn kind() -> PathBuf {
    common::k8s::bin_dir(&["kind"]).join("kind")
}

/// A mock API server that answers the identity request and empty lists.
fn mock_client() -> kube::Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let body = if request.uri().path() == "/api/v1/namespaces/kube-system" {
                r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"kube-system","uid":"u1"}}"#
            } else {
                r#"{"apiVersion":"v1","kind":"List","metadata":{},"items":[]}"#
            };
            send.send_response(
                Response::builder()
                    .body(Body::from(body.as_bytes().to_vec()))
                    .unwrap(),
            );
        }
    });
    kube::Client::new(service, "default")
}

/// The `kind` argv the kind target runs through a whole life.
async fn target_argvs(dir: &Path) -> Vec<Vec<String>> {
    let runner = FakeRunner::new(&["kind", "docker"], |argv| match argv {
        "kind get clusters" => Output::ok("other\n"),
        "kind get kubeconfig --name drill" => Output::ok("apiVersion: v1\nkind: Config\n"),
        "kind get nodes --name drill" => Output::ok("drill-control-plane\ndrill-worker\n"),
        _ => Output::ok(""),
    });
    let spec = KindSpec {
        cluster: Located::new("drill".to_owned()),
        config: Some(Located::new("../kind-configs/three-node.yaml".to_owned())),
        reuse: false,
        keep: false,
    };
    let scenarios = repo().join("scenarios");
    let target = KindTarget::with_runner(&spec, &scenarios, Arc::new(runner.clone()))
        .with_client(mock_client());
    let ctx = RunContext {
        run_id: "r".into(),
        run_dir: dir.to_path_buf(),
        workdir: dir.join("work"),
        scenario_dir: scenarios,
        env: Default::default(),
        seed: 1,
        emitter: Emitter::new(Vec::new()),
    };
    target.setup(&ctx).await.unwrap();
    let worker = NodeSelector {
        node: None,
        role: Some(Located::new("worker".to_owned())),
        count: Some(1),
    };
    let stop = FaultSpec::Kind(KindFault::Node(NodeFault::Stop, worker));
    target.inject("stop", &stop, &ctx.env, &ctx).await.unwrap();
    let delete = FaultSpec::Kind(KindFault::DeleteCluster);
    target
        .inject("delete", &delete, &ctx.env, &ctx)
        .await
        .unwrap();
    target.collect_evidence(&dir.join("evidence"), &ctx).await;
    target.teardown(&ctx, false).await;
    runner
        .calls()
        .into_iter()
        .filter(|call| call.program == "kind")
        .map(|call| call.args)
        .collect()
}

/// The `kind ...` command lines in the runbooks and scenarios, split into
/// words (quotes dropped).
fn written_argvs() -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for dir in ["runbooks", "scenarios"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let mut rest = line;
                while let Some(at) = rest.find("kind ") {
                    let before = &rest[..at];
                    let command = &rest[at..];
                    rest = &rest[at + 5..];
                    // A command, not the word in prose or a label.
                    let starts_command = before.trim_end().is_empty()
                        || before.trim_end().ends_with(['|', '&', ';', '(', ':', '`']);
                    let words: Vec<String> = command
                        .split_whitespace()
                        .take_while(|w| !matches!(*w, "|" | "||" | "&&" | ";" | "\\"))
                        .map(|w| w.trim_matches(['"', '\'', '`', ')']).to_owned())
                        .collect();
                    if starts_command
                        && words.len() > 2
                        && matches!(
                            words[1].as_str(),
                            "create" | "delete" | "get" | "load" | "export"
                        )
                    {
                        found.push((path.display().to_string(), words[1..].to_vec()));
                    }
                }
            }
        }
    }
    found
}

/// The subcommand words of an argv (`get nodes`, `load image-archive`).
fn subcommand(args: &[String]) -> Vec<String> {
    args.iter()
        .take(2)
        .take_while(|a| !a.starts_with('-'))
        .cloned()
        .collect()
}

/// The flags `kind SUB --help` lists, and its usage line.
fn help(kind: &Path, sub: &[String]) -> (BTreeSet<String>, String) {
    let out = Command::new(kind).args(sub).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("Usage:"),
        "kind {sub:?} --help: {text}"
    );
    let flags = text
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches(',').to_owned())
        .collect();
    let usage = text
        .lines()
        .skip_while(|l| !l.starts_with("Usage:"))
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_owned();
    (flags, usage)
}

fn check(kind: &Path, origin: &str, args: &[String]) {
    let sub = subcommand(args);
    assert_eq!(
        sub.len(),
        2,
        "{origin}: `kind {}`: no subcommand",
        args.join(" ")
    );
    let (flags, usage) = help(kind, &sub);
    // The usage names the subcommand: kind did not fall back to a parent.
    assert!(
        usage.starts_with(&format!("kind {}", sub.join(" "))),
        "{origin}: {usage}"
    );
    let mut positional = 0;
    let mut words = args[2..].iter();
    while let Some(word) = words.next() {
        if let Some(flag) = word.strip_prefix("--") {
            let name = flag.split('=').next().unwrap_or_default();
            assert!(
                flags.contains(&format!("--{name}")),
                "{origin}: `kind {}` passes --{name}, which kind {} does not take ({flags:?})",
                args.join(" "),
                sub.join(" ")
            );
            if !flag.contains('=') {
                words.next(); // every flag firedrill passes takes a value
            }
        } else {
            positional += 1;
        }
    }
    let allowed =
        usage.matches('[').count() + usage.matches('<').count() - usage.matches("[flags]").count();
    assert!(
        positional <= allowed,
        "{origin}: `kind {}` gives {positional} argument(s), usage is `{usage}`",
        args.join(" ")
    );
}

#[tokio::test]
async fn every_kind_command_line_is_one_the_real_kind_takes() {
    let kind = kind();
    let dir = tempfile::tempdir().unwrap();
    let argvs = target_argvs(dir.path()).await;
    let subs: BTreeSet<String> = argvs.iter().map(|a| subcommand(a).join(" ")).collect();
    assert_eq!(
        subs,
        [
            "create cluster",
            "delete cluster",
            "export logs",
            "get clusters",
            "get kubeconfig",
            "get nodes"
        ]
        .map(str::to_owned)
        .into(),
        "the target's kind commands: {argvs:?}"
    );
    for args in &argvs {
        if args.len() > 2 || subcommand(args).len() == 2 {
            check(&kind, "the kind target", args);
        }
    }
    let written = written_argvs();
    assert!(
        written.iter().any(|(_, a)| a[0] == "create"),
        "the runbooks' kind commands were not found: {written:?}"
    );
    for (origin, args) in &written {
        check(&kind, origin, args);
    }
}

#[test]
fn kind_without_a_container_engine_fails_clearly() {
    // firedrill asks the engine first (`docker info`), but kind's own
    // answer with no engine is an error, not an empty list.
    let out = Command::new(kind())
        .args(["get", "clusters"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed to list clusters"), "{stderr}");
}

/// Writes an executable shell script.
fn script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_kind_create_that_fails_is_not_the_runs_cluster_to_delete() {
    // The real binary and the real kind, whose every call is logged, over a
    // `docker` that says it is there (kind asks `docker -v`, firedrill
    // `docker info`), lists no containers and can do nothing else: kind's
    // own `create cluster` fails. The cluster was never made, so the run
    // must not run `kind delete cluster` at its end (a racer's cluster of the
    // same name would go), and exits 4 naming the failed command.
    let tmp = tempfile::tempdir().unwrap();
    let (bin, home, run_dir) = (
        tmp.path().join("bin"),
        tmp.path().join("home"),
        tmp.path().join("run"),
    );
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let kind_log = tmp.path().join("kind.log");
    script(
        &bin.join("kind"),
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            kind_log.display(),
            kind().display()
        ),
    );
    script(
        &bin.join("docker"),
        "#!/bin/sh\ncase \"$1\" in\n-v) echo 'Docker version 27.0.0, build stub';;\ninfo) echo 27.0.0;;\nps) ;;\n*) echo 'stub docker: no engine here' >&2; exit 1;;\nesac\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .current_dir(repo())
        .args(["run", "scenarios/namespace-deleted.yaml", "--run-dir"])
        .arg(&run_dir)
        .env("HOME", &home)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env_remove("KUBECONFIG")
        .env_remove("KIND_EXPERIMENTAL_PROVIDER")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{stdout}");
    assert!(
        stdout.contains("kind create cluster --name fd-namespace-deleted"),
        "{stdout}"
    );
    let calls = std::fs::read_to_string(&kind_log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls[0], "get clusters", "{calls:?}");
    assert!(calls[1].starts_with("create cluster"), "{calls:?}");
    assert!(
        !calls.iter().any(|c| c.starts_with("delete")),
        "the run deleted a cluster it never made: {calls:?}"
    );
    assert!(
        !run_dir
            .join(firedrill::target::kind::CREATED_MARKER)
            .exists()
    );
    let home_entries: Vec<_> = std::fs::read_dir(&home).unwrap().collect();
    assert!(
        home_entries.is_empty(),
        "HOME was touched: {home_entries:?}"
    );
}
