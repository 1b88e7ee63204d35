//! kwok clusters for the tests, made with the tools `.ci/install-k8s`
//! builds (kube-apiserver, kube-controller-manager, kube-scheduler, etcd,
//! kwok, kwokctl, kubectl), in a directory of the test's own, deleted (and
//! checked gone, process by process) when the test ends, also when it panics.

use std::path::{Path, PathBuf};
use std::process::Command;

use firedrill::target::kwok::ports;

/// The programs the kwok tests need.
const TOOLS: &[&str] = &[
    "kwokctl",
    "kwok",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
];

/// The bin dir of the control plane (see [`super::k8s::bin_dir`]), failing
/// with what to run when a tool is missing: these tests never pass by
/// skipping.
pub fn bin_dir() -> PathBuf {
    super::k8s::bin_dir(TOOLS)
}

/// `PATH` with the control plane's bin dir first.
pub fn path_with_tools() -> String {
    format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The kwokctl configuration `.ci/install-k8s` writes beside the bin dir.
pub fn kwokctl_config() -> PathBuf {
    let config = bin_dir().parent().unwrap().join("kwok.yaml");
    assert!(
        config.is_file(),
        "{} missing: run `.ci/install-k8s`",
        config.display()
    );
    config
}

/// `(ppid, zombie)` of a live pid.
fn stat(pid: i32) -> Option<bool> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat
        .rsplit(')')
        .next()?
        .split_whitespace()
        .next()?
        .to_owned();
    Some(state == "Z" || state == "X")
}

/// Whether `pid` runs (not a zombie).
pub fn running(pid: i32) -> bool {
    stat(pid) == Some(false)
}

/// The component pids of a kwok cluster (`<home>/clusters/<name>/pids`).
pub fn component_pids(home: &Path, name: &str) -> Vec<i32> {
    let dir = home.join("clusters").join(name).join("pids");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect()
}

/// Processes (live, not zombies) whose command line mentions `needle`:
/// a cluster's components name its directory in their flags.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        if pid == std::process::id() as i32 || !running(pid) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// A kwok cluster of a test, in a directory of its own (kwokctl's home,
/// the kubeconfig, kubectl's cache). Dropping it deletes the cluster and
/// checks in /proc that none of its processes is left.
pub struct KwokCluster {
    /// The cluster's name.
    pub name: String,
    /// The test's directory.
    pub dir: PathBuf,
    /// Whether the directory is removed at the end.
    remove_dir: bool,
}

impl KwokCluster {
    /// Creates a cluster with `nodes` simulated nodes (`node-0` ..) under
    /// `dir`, taking turns with other creates on this host.
    /// Its ports are reserved on this host as firedrill reserves its
    /// own clusters' (so that no cluster created meanwhile takes the port of
    /// a component a test stopped), and released when it is deleted.
    pub fn create(name: &str, dir: &Path, nodes: u32) -> KwokCluster {
        let home = dir.join("kwok");
        std::fs::create_dir_all(&home).unwrap();
        let reserved = ports::Registry::default()
            .reserve(&home, ports::Owner::me())
            .unwrap();
        let config = ports::config_with_ports(Some(&kwokctl_config()), &reserved).unwrap();
        std::fs::write(home.join("kwok.yaml"), config).unwrap();
        let cluster = KwokCluster {
            name: name.to_owned(),
            dir: dir.to_path_buf(),
            remove_dir: false,
        };
        let lock = firedrill::target::kwok::create_lock_file().unwrap();
        lock.lock().unwrap();
        let kubeconfig = cluster.kubeconfig().display().to_string();
        cluster.kwokctl(&[
            "create",
            "cluster",
            "--runtime",
            "binary",
            "--kubeconfig",
            &kubeconfig,
            "--wait",
            "2m",
        ]);
        cluster.wait_ready();
        drop(lock);
        let mut nodes_yaml = String::new();
        for i in 0..nodes {
            nodes_yaml.push_str(&format!(
                "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-{i}\n  annotations: {{kwok.x-k8s.io/node: fake}}\n  labels: {{kubernetes.io/hostname: node-{i}, type: kwok}}\nstatus:\n  allocatable: {{cpu: '32', memory: 256Gi, pods: '110'}}\n  capacity: {{cpu: '32', memory: 256Gi, pods: '110'}}\n---\n"
            ));
        }
        if nodes > 0 {
            cluster.kubectl_stdin(&["apply", "-f", "-"], &nodes_yaml);
            cluster.kubectl(&[
                "wait",
                "--for=condition=Ready",
                "node",
                "--all",
                "--timeout=60s",
            ]);
        }
        cluster
    }

    /// A cluster made by someone else (firedrill) in `dir`: dropping the
    /// handle deletes it if it is still there, and checks that none of its
    /// processes is left.
    pub fn adopt(name: &str, dir: &Path) -> KwokCluster {
        KwokCluster {
            name: name.to_owned(),
            dir: dir.to_path_buf(),
            remove_dir: false,
        }
    }

    /// The same, in a fresh directory removed at the end.
    pub fn create_temp(name: &str, nodes: u32) -> KwokCluster {
        let dir =
            std::env::temp_dir().join(format!("firedrill-kwok-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cluster = KwokCluster::create(name, &dir, nodes);
        cluster.remove_dir = true;
        cluster
    }

    /// kwokctl's home.
    pub fn home(&self) -> PathBuf {
        self.dir.join("kwok")
    }

    /// The kubeconfig file.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(bin_dir().join(program));
        command
            .env("PATH", path_with_tools())
            .env("KWOK_WORKDIR", self.home())
            .env("KUBECONFIG", self.kubeconfig())
            .env("KUBECACHEDIR", self.dir.join("kube-cache"))
            .stdin(std::process::Stdio::null());
        command
    }

    /// `kwokctl --name NAME args…`, which must succeed.
    pub fn kwokctl(&self, args: &[&str]) -> String {
        let output = self
            .command("kwokctl")
            .arg("--name")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kwokctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `kubectl args…`: (success, stdout, stderr).
    pub fn try_kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let output = self
            .command("kubectl")
            .arg("--request-timeout=20s")
            .args(args)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `kubectl args…`, which must succeed; its stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.try_kubectl(args);
        assert!(ok, "kubectl {args:?} failed: {stderr}");
        stdout
    }

    /// `kubectl args…` with `input` on stdin, which must succeed.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = self
            .command("kubectl")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits (up to 2 minutes) until the API server answers `/readyz`.
    pub fn wait_ready(&self) {
        for _ in 0..600 {
            if self.try_kubectl(&["get", "--raw", "/readyz"]).0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("kwok cluster {} not ready after 2 minutes", self.name);
    }

    /// Deletes the cluster; every process of it must then be gone.
    pub fn delete(&self) -> Result<(), String> {
        let pids = component_pids(&self.home(), &self.name);
        if self.home().join("clusters").join(&self.name).exists() {
            let kubeconfig = self.kubeconfig().display().to_string();
            let _ = self
                .command("kwokctl")
                .arg("--name")
                .arg(&self.name)
                .args(["delete", "cluster", "--kubeconfig", &kubeconfig])
                .output();
        }
        let mut left: Vec<i32> = pids.iter().copied().filter(|p| running(*p)).collect();
        for _ in 0..100 {
            if left.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            left.retain(|p| running(*p));
        }
        let mentioning = processes_mentioning(&self.home().display().to_string());
        for pid in &left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = ports::Registry::default().release(&self.home());
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if left.is_empty() && mentioning.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "kwok cluster {}: processes left after delete: {left:?} {mentioning:?}",
                self.name
            ))
        }
    }
}

impl Drop for KwokCluster {
    fn drop(&mut self) {
        let result = self.delete();
        if let Err(error) = result
            && !std::thread::panicking()
        {
            panic!("{error}");
        }
    }
}
