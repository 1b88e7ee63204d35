//! The kind target on a machine without kind: a clear "install kind" error
//! (exit 4 in the engine), and the user's home — `~/.kube` above all — is not
//! created or touched. Its own test binary, because it changes `HOME` and
//! `PATH` of the process.

use std::collections::BTreeMap;
use std::path::Path;

use firedrill::drill::KindTarget as KindSpec;
use firedrill::drill::yaml::Located;
use firedrill::event::Emitter;
use firedrill::target::kind::KindTarget;
use firedrill::target::{RunContext, Target, TargetError};

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn setup_without_kind_is_unavailable_and_leaves_home_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let bin = tmp.path().join("bin");
    let run_dir = tmp.path().join("run");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    // A container engine is there (and records any call); kind is not.
    let marker = tmp.path().join("docker-was-called");
    let docker = bin.join("docker");
    std::fs::write(&docker, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    // SAFETY: this binary holds this one test and no other thread reads the
    // environment while it is changed (the runtime is built afterwards).
    unsafe {
        std::env::set_var("HOME", &home);
        std::env::set_var("PATH", &bin);
        std::env::remove_var("KUBECONFIG");
    }
    let spec = KindSpec {
        cluster: Located::new("drill".to_owned()),
        config: Some(Located::new("kind-configs/single-node.yaml".to_owned())),
        reuse: false,
        keep: false,
    };
    let target = KindTarget::new(&spec, tmp.path());
    let ctx = RunContext {
        run_id: "r".into(),
        run_dir: run_dir.clone(),
        workdir: tmp.path().join("work"),
        scenario_dir: tmp.path().to_path_buf(),
        env: BTreeMap::new(),
        seed: 1,
        emitter: Emitter::new(Vec::new()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime.block_on(target.setup(&ctx)).unwrap_err();
    let TargetError::Unavailable(message) = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert!(message.contains("`kind` is not installed"), "{message}");
    assert!(message.contains("install kind"), "{message}");
    runtime.block_on(target.teardown(&ctx, false));

    assert!(!home.join(".kube").exists(), "~/.kube was created");
    assert!(
        entries(&home).is_empty(),
        "home was touched: {:?}",
        entries(&home)
    );
    assert!(!marker.exists(), "docker was run although kind is missing");
    assert!(!run_dir.join("kubeconfig").exists());
}

/// The whole binary, as a user would meet it: a kind drill on a machine
/// without kind exits 4 with what to install and never creates `~/.kube`.
#[test]
fn a_kind_drill_without_kind_exits_4_and_leaves_home_alone() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/node-loss.yaml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .current_dir(work.path())
        .arg("run")
        .arg(&scenario)
        .arg("--halt-file")
        .arg(work.path().join("halt"))
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("install kind"), "{stdout}");
    assert!(
        entries(home.path()).is_empty(),
        "HOME was touched: {:?}",
        entries(home.path())
    );
}
