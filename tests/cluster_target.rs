//! The `cluster` target against a real API server: a kwok cluster (real
//! kube-apiserver, etcd, controllers; simulated nodes) started by kwokctl in
//! a temporary directory. The real binary runs drills pinned to its UID:
//! pinned right, it passes; pinned wrong, it stops before anything (exit 3)
//! and every object is still there; a fault outside the drill's scope is
//! refused, at validation when literal, at run time (exit 3) otherwise.
//!
//! Two witnesses watch every run: HOME is a temporary directory whose
//! `~/.kube/config` is a canary (inotify reports any open of it, and its
//! server is a socket of the test's that must never see a connection), and
//! the API server's audit log must show no write of firedrill's, or of the
//! drill's commands, outside the drill's namespace.
//!
//! The control plane is built by `.ci/install-k8s` (tools/k8s); the tests
//! find it through `FIREDRILL_K8S_BIN`, else
//! `~/.cache/firedrill/tools/k8s-current/bin`, and fail, saying so, when it
//! is not there.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;

mod common;

/// A kwok cluster in a temporary directory: its kubeconfig, kwokctl's home
/// and kubectl's cache all inside it. Dropped (also on a panic), it is
/// deleted and its processes are killed.
struct KwokCluster {
    name: String,
    bin: PathBuf,
    config: PathBuf,
    dir: tempfile::TempDir,
    pids: Vec<i32>,
}

impl KwokCluster {
    fn start(name: &str) -> KwokCluster {
        let bin = common::k8s::bin_dir(&["kwokctl", "kwok", "kube-apiserver", "etcd", "kubectl"]);
        let config = bin.parent().unwrap().join("kwok.yaml");
        assert!(
            config.is_file(),
            "{} missing: run `.ci/install-k8s`",
            config.display()
        );
        let mut cluster = KwokCluster {
            name: format!("{name}-{}", std::process::id()),
            bin,
            config,
            dir: tempfile::tempdir().unwrap(),
            pids: Vec::new(),
        };
        // kwokctl picks free ports by probing them and the components bind
        // them later: creates take turns until the API server answers
        // (tools/k8s/README.md), with every other user of the same lock.
        let lock =
            File::create(std::env::temp_dir().join("firedrill-kwokctl-create.lock")).unwrap();
        // SAFETY: flock on a descriptor this function owns.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        let policy = cluster.dir.path().join("audit-policy.yaml");
        std::fs::write(&policy, AUDIT_POLICY).unwrap();
        let out = cluster.kwokctl(&[
            "create",
            "cluster",
            "--runtime",
            "binary",
            "--wait",
            "2m",
            "--kube-audit-policy",
            policy.to_str().unwrap(),
        ]);
        cluster.pids = cluster.read_pids();
        assert!(
            out.status.success(),
            "kwokctl create: {}",
            text(&out.stderr)
        );
        // kwokctl exits 0 even when the cluster never became ready.
        let ready = (0..240).any(|_| {
            let ok = cluster
                .kubectl(&["get", "--raw", "/readyz"])
                .status
                .success();
            if !ok {
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            ok
        });
        drop(lock);
        assert!(ready, "the kwok cluster's API server never became ready");
        cluster
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn context(&self) -> String {
        format!("kwok-{}", self.name)
    }

    fn env(&self, command: &mut Command) {
        command
            .env("KWOK_WORKDIR", self.dir.path().join("kwok"))
            .env("KUBECACHEDIR", self.dir.path().join("kube-cache"))
            .env("KUBECONFIG", self.kubeconfig())
            .env("PATH", path_with(&self.bin));
    }

    fn kwokctl(&self, args: &[&str]) -> Output {
        let mut command = Command::new(self.bin.join("kwokctl"));
        command
            .arg("--config")
            .arg(&self.config)
            .args(["--name", &self.name])
            .args(args)
            .arg("--kubeconfig")
            .arg(self.kubeconfig());
        self.env(&mut command);
        command.output().unwrap()
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        let mut command = Command::new(self.bin.join("kubectl"));
        command
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--request-timeout=10s")
            .args(args);
        self.env(&mut command);
        command.output().unwrap()
    }

    /// The API server's audit log (every request, at `Metadata` level).
    fn audit_log(&self) -> PathBuf {
        self.dir
            .path()
            .join("kwok/clusters")
            .join(&self.name)
            .join("logs/audit.log")
    }

    /// The audit events logged from now on, once a marker request made now
    /// is in the log: what happened before this call is not in them.
    fn audit_mark(&self, marker: &str) -> AuditMark {
        // A request that fails (no such ConfigMap) but is logged.
        self.kubectl(&["-n", "default", "get", "configmap", marker]);
        let logged = (0..200).any(|_| {
            let found = std::fs::read_to_string(self.audit_log())
                .unwrap_or_default()
                .contains(&format!("\"name\":\"{marker}\""));
            if !found {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            found
        });
        assert!(logged, "the audit log never showed the marker {marker}");
        AuditMark {
            log: self.audit_log(),
            marker: marker.to_owned(),
        }
    }

    fn read_pids(&self) -> Vec<i32> {
        let dir = self
            .dir
            .path()
            .join("kwok/clusters")
            .join(&self.name)
            .join("pids");
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .filter_map(|pid| pid.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Deletes the cluster; returns its processes still running after.
    fn delete(&mut self) -> Vec<i32> {
        self.pids.extend(self.read_pids());
        let _ = self.kwokctl(&["delete", "cluster"]);
        let pids = std::mem::take(&mut self.pids);
        // A killed process may stay a zombie a moment before it is reaped.
        let mut left = pids.clone();
        for _ in 0..100 {
            left = pids.iter().copied().filter(|pid| running(*pid)).collect();
            if left.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        for pid in &left {
            // SAFETY: a pid read from this cluster's own pid files, still running.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        left
    }
}

impl Drop for KwokCluster {
    fn drop(&mut self) {
        if !self.pids.is_empty()
            || self
                .dir
                .path()
                .join("kwok/clusters")
                .join(&self.name)
                .exists()
        {
            self.delete();
        }
    }
}

/// Whether `pid` is a process that has not ended (a zombie has).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_owned())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every request, with who made it and on what, not its body.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
";

/// A point in the audit log ([`KwokCluster::audit_mark`]).
struct AuditMark {
    log: PathBuf,
    marker: String,
}

/// The user agents of the cluster's own components: they use the same
/// admin credentials as firedrill, and their writes (a new namespace's
/// `default` ServiceAccount, kwok's node heartbeats) are the cluster's.
const CONTROL_PLANE_AGENTS: &[&str] = &[
    "kube-controller-manager/",
    "kube-scheduler/",
    "kube-apiserver/",
    "kwok/",
];

impl AuditMark {
    /// The writes logged after the mark, except those of the cluster's own
    /// components: `VERB RESOURCE NAMESPACE/NAME (by USER AGENT)` each.
    fn admin_writes(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap();
        let events: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let start = events
            .iter()
            .position(|e| e["objectRef"]["name"] == self.marker.as_str())
            .expect("the marker is in the log");
        events[start..]
            .iter()
            .filter(|e| e["stage"] == "ResponseComplete")
            .filter(|e| {
                matches!(
                    e["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete" | "deletecollection")
                )
            })
            .filter(|e| {
                let agent = e["userAgent"].as_str().unwrap_or_default();
                !CONTROL_PLANE_AGENTS.iter().any(|a| agent.starts_with(a))
            })
            .map(|e| {
                let o = &e["objectRef"];
                format!(
                    "{} {} {}/{} (by {} {})",
                    e["verb"].as_str().unwrap_or_default(),
                    o["resource"].as_str().unwrap_or_default(),
                    o["namespace"].as_str().unwrap_or_default(),
                    o["name"].as_str().unwrap_or_default(),
                    e["user"]["username"].as_str().unwrap_or_default(),
                    e["userAgent"].as_str().unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// A HOME whose `~/.kube/config` is a canary: a kubeconfig whose server is
/// a socket of the test's, under an inotify watch. Anything that opens,
/// lists, writes or adds to `~/.kube`, or connects to the canary's server,
/// shows in [`Canary::disturbed`].
struct Canary {
    home: PathBuf,
    original: Vec<u8>,
    inotify: std::os::fd::OwnedFd,
    server: std::net::TcpListener,
}

impl Canary {
    fn new(home: &Path) -> Canary {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let kube = home.join(".kube");
        std::fs::create_dir_all(&kube).unwrap();
        let config = format!(
            "apiVersion: v1
kind: Config
current-context: canary
clusters:
- name: canary
  cluster: {{server: 'http://{}'}}
contexts:
- name: canary
  context: {{cluster: canary, user: canary}}
users:
- name: canary
  user: {{token: canary-token}}
",
            server.local_addr().unwrap()
        );
        std::fs::write(kube.join("config"), &config).unwrap();
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain inotify calls; the descriptor is owned from here on.
        let inotify = unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            assert!(fd >= 0, "inotify_init1");
            std::os::fd::OwnedFd::from_raw_fd(fd)
        };
        let path = std::ffi::CString::new(kube.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid descriptor and a NUL-terminated path.
        let watch = unsafe {
            libc::inotify_add_watch(
                std::os::fd::AsRawFd::as_raw_fd(&inotify),
                path.as_ptr(),
                libc::IN_ALL_EVENTS,
            )
        };
        assert!(watch >= 0, "inotify_add_watch");
        Canary {
            home: home.to_path_buf(),
            original: config.into_bytes(),
            inotify,
            server,
        }
    }

    /// What touched the canary since it was made (empty: nothing).
    fn disturbed(&self) -> Vec<String> {
        let mut found = self.events();
        if let Ok((_, peer)) = self.server.accept() {
            found.push(format!("a connection to the canary's server from {peer}"));
        }
        let kube = self.home.join(".kube");
        let entries: Vec<String> = std::fs::read_dir(&kube)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        if entries != ["config"] {
            found.push(format!("~/.kube holds {entries:?}"));
        }
        if std::fs::read(kube.join("config")).unwrap() != self.original {
            found.push("~/.kube/config changed".to_owned());
        }
        // This function's own looks at ~/.kube are not to be reported.
        self.events();
        found
    }

    /// The inotify events on ~/.kube not read yet.
    fn events(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            // SAFETY: reading into a buffer this function owns.
            let n = unsafe {
                libc::read(
                    std::os::fd::AsRawFd::as_raw_fd(&self.inotify),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            if n <= 0 {
                return found;
            }
            let mut at = 0;
            while at < n as usize {
                // SAFETY: the kernel wrote whole events into the buffer.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buffer[at..].as_ptr().cast()) };
                let name_start = at + std::mem::size_of::<libc::inotify_event>();
                let name = &buffer[name_start..name_start + event.len as usize];
                let name = String::from_utf8_lossy(name)
                    .trim_end_matches('\0')
                    .to_owned();
                found.push(format!("inotify mask {:#x} on ~/.kube/{name}", event.mask));
                at = name_start + event.len as usize;
            }
        }
    }
}

const MANIFEST: &str = "apiVersion: v1
kind: Namespace
metadata: {name: drill-shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: drill-shop}
data: {mode: live}
";

/// A drill on the cluster: the ConfigMap is deleted (in `${NS}`, default
/// the drill's own namespace) and reapplied.
fn drill(kubeconfig: &Path, context: &str, uid: &str, namespace: &str) -> String {
    format!(
        r#"version: 1
name: cluster-configmap-lost
target:
  cluster:
    kubeconfig: {kubeconfig}
    context: {context}
    uid: {uid}
vars:
  NS: drill-shop
objectives:
  rto: 2m
probes:
  settings-present:
    k8s: {{kind: ConfigMap, namespace: drill-shop, name: settings, condition: Exists}}
    interval: 300ms
steady_state: [settings-present]
steps:
  - id: deploy
    apply: [manifest.yaml]
  - id: lose-settings
    needs: [deploy]
    fault:
      delete: {{kind: ConfigMap, namespace: "{namespace}", name: settings}}
  - id: reapply
    needs: [lose-settings]
    recover:
      run: kubectl apply -f manifest.yaml
"#,
        kubeconfig = kubeconfig.display()
    )
}

/// Runs the real binary with `home` as HOME and the control plane on PATH.
fn firedrill(cluster: &KwokCluster, home: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("firedrill")
        .unwrap()
        .current_dir(dir)
        .env("HOME", home)
        .env("PATH", path_with(&cluster.bin))
        .env_remove("KUBECONFIG")
        .env_remove("KUBECACHEDIR")
        .args(args)
        .output()
        .unwrap()
}

fn configmap_exists(cluster: &KwokCluster, namespace: &str) -> bool {
    let out = cluster.kubectl(&[
        "-n",
        namespace,
        "get",
        "configmap",
        "settings",
        "-o",
        "name",
    ]);
    out.status.success() && text(&out.stdout).trim() == "configmap/settings"
}

#[test]
fn a_drill_pinned_to_the_cluster_passes_pinned_wrong_it_stops_and_out_of_scope_it_is_refused() {
    let mut cluster = KwokCluster::start("fd-cluster");
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(work.path().join("manifest.yaml"), MANIFEST).unwrap();
    // A kubeconfig of the user's with the cluster's context among others.
    let original = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
    std::fs::write(home.join("staging.yaml"), &original).unwrap();
    // Somebody else's namespace, with an object of the same name.
    cluster.kubectl(&["create", "namespace", "bystander"]);
    cluster.kubectl(&[
        "-n",
        "bystander",
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=theirs",
    ]);
    assert!(configmap_exists(&cluster, "bystander"));
    let canary = Canary::new(&home);
    let audit = cluster.audit_mark("fd-audit-start");

    // cluster-id prints the UID kubectl sees (`~` is HOME, not ~/.kube).
    let kubeconfig = cluster.kubeconfig();
    let kubeconfig_arg = kubeconfig.to_str().unwrap();
    let context = cluster.context();
    let out = firedrill(
        &cluster,
        &home,
        work.path(),
        &[
            "cluster-id",
            "--kubeconfig",
            "~/staging.yaml",
            "--context",
            &context,
        ],
    );
    assert!(out.status.success(), "cluster-id: {}", text(&out.stderr));
    let uid = text(&out.stdout).trim().to_owned();
    let seen = cluster.kubectl(&[
        "get",
        "namespace",
        "kube-system",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    assert_eq!(uid, text(&seen.stdout));
    let out = firedrill(
        &cluster,
        &home,
        work.path(),
        &[
            "cluster-id",
            "--kubeconfig",
            kubeconfig_arg,
            "--context",
            "nope",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no context `nope`"),
        "{}",
        text(&out.stderr)
    );

    // Pinned right: it passes, through a copy of the one context.
    std::fs::write(
        work.path().join("good.yaml"),
        drill(&kubeconfig, &context, &uid, "${NS}"),
    )
    .unwrap();
    let run_dir = work.path().join("run-good");
    let out = firedrill(
        &cluster,
        &home,
        work.path(),
        &["run", "good.yaml", "--run-dir", run_dir.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let journal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("journal.json")).unwrap())
            .unwrap();
    assert_eq!(journal["verdict"], "passed");
    assert_eq!(
        journal["faults"][0]["targets"][0],
        "ConfigMap/drill-shop/settings"
    );
    assert!(
        journal["ttd_ms"].is_u64(),
        "the deletion was detected: {journal}"
    );
    let copy = std::fs::read_to_string(run_dir.join("kubeconfig")).unwrap();
    assert!(
        copy.contains(&context) && copy.matches("\"name\"").count() == 3,
        "one context, its cluster and user: {copy}"
    );
    assert!(
        run_dir.join("kube-cache").is_dir(),
        "kubectl's cache is in the run dir"
    );
    assert_eq!(
        std::fs::read_to_string(&kubeconfig).unwrap(),
        original,
        "the original is never modified"
    );
    assert!(configmap_exists(&cluster, "drill-shop"));

    // Pinned wrong: nothing starts (exit 3, both UIDs named), nothing deleted.
    let wrong = "00000000-0000-0000-0000-000000000000";
    std::fs::write(
        work.path().join("wrong.yaml"),
        drill(&kubeconfig, &context, wrong, "${NS}"),
    )
    .unwrap();
    let run_dir = work.path().join("run-wrong");
    let out = firedrill(
        &cluster,
        &home,
        work.path(),
        &["run", "wrong.yaml", "--run-dir", run_dir.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let journal = std::fs::read_to_string(run_dir.join("journal.json")).unwrap();
    assert!(
        journal.contains(&uid) && journal.contains(wrong),
        "{journal}"
    );
    assert!(
        journal.contains("\"faults\": []") || journal.contains("\"faults\":[]"),
        "{journal}"
    );
    assert!(
        configmap_exists(&cluster, "drill-shop"),
        "the pinned-wrong run deleted something"
    );

    // Outside the scope: literal, refused at validation (exit 2) ...
    std::fs::write(
        work.path().join("literal.yaml"),
        drill(&kubeconfig, &context, &uid, "bystander"),
    )
    .unwrap();
    let out = firedrill(&cluster, &home, work.path(), &["validate", "literal.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("namespace `bystander` is not one of drill-shop"),
        "{}",
        text(&out.stderr)
    );
    // ... through a variable, refused at run time (exit 3), nothing deleted.
    let run_dir = work.path().join("run-scope");
    let out = firedrill(
        &cluster,
        &home,
        work.path(),
        &[
            "run",
            "good.yaml",
            "--var",
            "NS=bystander",
            "--run-dir",
            run_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let journal = std::fs::read_to_string(run_dir.join("journal.json")).unwrap();
    assert!(journal.contains("outside the drill's scope"), "{journal}");
    assert!(
        configmap_exists(&cluster, "bystander"),
        "a fault outside the scope deleted something"
    );

    // Nothing firedrill or the drill's commands did left the drill's
    // namespace, and nothing looked at ~/.kube.
    let writes = audit.admin_writes();
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("delete configmaps drill-shop/settings")),
        "the audit log shows the fault's delete: {writes:#?}"
    );
    let outside: Vec<&String> = writes
        .iter()
        .filter(|w| !w.contains(" drill-shop/") && !w.contains(" namespaces /drill-shop "))
        .collect();
    assert!(
        outside.is_empty(),
        "writes outside the drill's namespace: {outside:#?}"
    );
    let disturbed = canary.disturbed();
    assert!(disturbed.is_empty(), "~/.kube was touched: {disturbed:#?}");

    // `clean` of a run that created a kind cluster deletes it only while
    // the API server behind the run's kubeconfig is still that cluster
    // (this kwok cluster stands in for it; kind itself is recorded).
    for (recorded, deleted) in [(uid.as_str(), true), (wrong, false)] {
        let run_dir = work.path().join(format!("run-clean-{deleted}"));
        std::fs::create_dir(&run_dir).unwrap();
        std::fs::copy(&kubeconfig, run_dir.join("kubeconfig")).unwrap();
        let marker = serde_json::json!({"cluster": "fd-made", "uid": recorded});
        std::fs::write(
            run_dir.join(firedrill::target::kind::CREATED_MARKER),
            marker.to_string(),
        )
        .unwrap();
        let runner = firedrill::target::kind::runner::FakeRunner::new(&["kind"], |_| {
            firedrill::target::kind::runner::Output::ok("")
        });
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let result = runtime
            .block_on(firedrill::target::kind::clean_cluster(&run_dir, &runner))
            .unwrap();
        let argvs = runner.argvs();
        if deleted {
            assert_eq!(result.unwrap(), "deleted kind cluster fd-made");
            assert_eq!(
                argvs,
                [format!(
                    "kind delete cluster --name fd-made --kubeconfig {}",
                    run_dir.join("kubeconfig").display()
                )]
            );
        } else {
            let error = result.unwrap_err().to_string();
            assert!(
                error.contains("refusing to delete kind cluster fd-made") && error.contains(wrong),
                "{error}"
            );
            assert!(argvs.is_empty(), "{argvs:?}");
        }
    }

    let left = cluster.delete();
    assert!(
        left.is_empty(),
        "processes of the kwok cluster left after delete: {left:?}"
    );
}
