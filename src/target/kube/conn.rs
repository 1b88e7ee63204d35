//! How a Kubernetes target talks to its API server, and how it knows it is
//! still the right one: the client built from `RUN_DIR/kubeconfig` alone
//! (rebuilt when a runbook rewrites that file), `KUBECACHEDIR` inside the
//! run directory, and the identity pin, the UID of `kube-system`.
//!
//! The pin is recorded at setup (kind, kwok) or given by the drill
//! (`cluster`). A legitimate rebuild changes the UID; only
//! [`Connection::repin`], called explicitly, moves the pin, and what it
//! returns names both UIDs for the journal.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use super::api;
use crate::target::TargetError;

/// `KUBECACHEDIR`: kubectl's discovery and HTTP cache, kept in the run
/// directory so nothing is written under `~/.kube`.
pub fn kube_cache_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("kube-cache")
}

/// The run's own kubeconfig.
pub fn run_kubeconfig(run_dir: &Path) -> PathBuf {
    run_dir.join("kubeconfig")
}

/// `KUBECONFIG` and `KUBECACHEDIR`, set for every command of a run on a
/// Kubernetes target.
pub fn kube_vars(run_dir: &Path) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        (
            "KUBECONFIG".to_owned(),
            run_kubeconfig(run_dir).display().to_string(),
        ),
        (
            "KUBECACHEDIR".to_owned(),
            kube_cache_dir(run_dir).display().to_string(),
        ),
    ])
}

/// A target's connection to its API server.
pub struct Connection {
    /// How the cluster is named in messages (`kind cluster shop`).
    name: String,
    /// A client given by a test instead of one built from the kubeconfig.
    fixed: Option<Client>,
    /// The client and the kubeconfig (with its certificates) it was built
    /// from: a runbook that recreates the cluster rewrites them, and the
    /// client follows.
    cached: tokio::sync::Mutex<Option<(String, Client)>>,
    /// The pinned `kube-system` UID.
    pin: Mutex<Option<String>>,
}

impl Connection {
    /// A connection to the cluster called `name` in messages.
    pub fn new(name: impl Into<String>) -> Connection {
        Connection {
            name: name.into(),
            fixed: None,
            cached: tokio::sync::Mutex::new(None),
            pin: Mutex::new(None),
        }
    }

    /// Uses `client` instead of one built from the kubeconfig (tests).
    pub fn with_client(mut self, client: Client) -> Connection {
        self.fixed = Some(client);
        self
    }

    /// The client for `kubeconfig` (the run's own file).
    pub async fn client(&self, kubeconfig: &Path) -> Result<Client, TargetError> {
        if let Some(client) = &self.fixed {
            return Ok(client.clone());
        }
        let text = kubeconfig_fingerprint(kubeconfig).map_err(|e| {
            TargetError::Failed(format!(
                "cannot read the cluster's kubeconfig {}: {e}",
                kubeconfig.display()
            ))
        })?;
        let mut cached = self.cached.lock().await;
        if let Some((seen, client)) = cached.as_ref()
            && *seen == text
        {
            return Ok(client.clone());
        }
        let client = client_from_file(kubeconfig).await?;
        *cached = Some((text, client.clone()));
        Ok(client)
    }

    /// The pinned UID.
    pub fn pinned(&self) -> Option<String> {
        self.pin.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Pins the identity.
    pub fn pin(&self, uid: String) {
        *self.pin.lock().unwrap_or_else(|e| e.into_inner()) = Some(uid);
    }

    /// Refuses unless the API server behind `kubeconfig` is the pinned one;
    /// `what` says what would be refused.
    pub async fn confirm(&self, what: &str, kubeconfig: &Path) -> Result<(), TargetError> {
        let name = &self.name;
        let Some(pinned) = self.pinned() else {
            return Err(TargetError::Refused(format!(
                "refusing to {what}: the identity of {name} was not recorded at setup"
            )));
        };
        let client = self
            .client(kubeconfig)
            .await
            .map_err(|e| TargetError::Refused(format!("refusing to {what}: {e}")))?;
        match api::kube_system_uid(&client).await {
            Ok(uid) if uid == pinned => Ok(()),
            Ok(uid) => Err(TargetError::Refused(format!(
                "refusing to {what}: the API server in {} is not {name} (kube-system UID {uid}, expected {pinned})",
                kubeconfig.display()
            ))),
            Err(e) => Err(TargetError::Refused(format!(
                "refusing to {what}: cannot confirm that the API server is {name}: {e}"
            ))),
        }
    }

    /// Moves the pin to the cluster the API server is now (after a
    /// legitimate rebuild), explicitly: returns what changed, for the
    /// journal. Fails if the API server cannot be read.
    pub async fn repin(&self, kubeconfig: &Path) -> Result<String, TargetError> {
        let client = self.client(kubeconfig).await?;
        let uid = api::kube_system_uid(&client)
            .await
            .map_err(|e| TargetError::Failed(format!("cannot re-pin {}: {e}", self.name)))?;
        let old = self.pinned();
        self.pin(uid.clone());
        Ok(match old {
            Some(old) if old == uid => format!("{} is still kube-system UID {uid}", self.name),
            Some(old) => format!(
                "identity of {} re-pinned: kube-system UID {old} -> {uid}",
                self.name
            ),
            None => format!("identity of {} pinned: kube-system UID {uid}", self.name),
        })
    }
}

/// The text of a kubeconfig and of the certificate files it names: a
/// rebuilt cluster (kwokctl) may keep the same text and port but have new
/// certificates behind the same paths, and a client built for the old ones
/// cannot talk to it.
fn kubeconfig_fingerprint(path: &Path) -> std::io::Result<String> {
    let mut text = std::fs::read_to_string(path)?;
    if let Ok(config) = Kubeconfig::read_from(path) {
        let clusters = config
            .clusters
            .iter()
            .filter_map(|c| c.cluster.as_ref()?.certificate_authority.clone());
        let users = config.auth_infos.iter().flat_map(|a| {
            let auth = a.auth_info.as_ref();
            [
                auth.and_then(|a| a.client_certificate.clone()),
                auth.and_then(|a| a.client_key.clone()),
            ]
            .into_iter()
            .flatten()
        });
        for file in clusters.chain(users) {
            text.push('\0');
            text.push_str(&std::fs::read_to_string(&file).unwrap_or_default());
        }
    }
    Ok(text)
}

/// Builds a client from exactly this kubeconfig file.
pub async fn client_from_file(path: &Path) -> Result<Client, TargetError> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
        TargetError::Failed(format!("cannot read kubeconfig {}: {e}", path.display()))
    })?;
    client_from(kubeconfig, &KubeConfigOptions::default(), path).await
}

/// Builds a client from a kubeconfig read from `path`.
pub async fn client_from(
    kubeconfig: Kubeconfig,
    options: &KubeConfigOptions,
    path: &Path,
) -> Result<Client, TargetError> {
    let mut config = Config::from_custom_kubeconfig(kubeconfig, options)
        .await
        .map_err(|e| TargetError::Failed(format!("invalid kubeconfig {}: {e}", path.display())))?;
    // A paused or partitioned control plane must make requests fail, not hang:
    // probes, guards and evidence all wait on them.
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    config.read_timeout = Some(std::time::Duration::from_secs(30));
    config.write_timeout = Some(std::time::Duration::from_secs(30));
    // No retries behind firedrill's back: a probe must fail within its own
    // timeout, and a drain counts and reports the refusals it asks again.
    config.default_retry = false;
    Client::try_from(config).map_err(|e| {
        TargetError::Failed(format!("cannot build a client for {}: {e}", path.display()))
    })
}

/// Writes a file of the run directory only its owner can read (a
/// kubeconfig holds credentials). The run directory may be crafted: a
/// symlink there is never followed, and a file with another link (a hard
/// link to a file elsewhere) is never written through.
pub fn write_private(path: &Path, text: &str) -> Result<(), TargetError> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let failed = |e: &dyn std::fmt::Display| {
        TargetError::Failed(format!("cannot write {}: {e}", path.display()))
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| failed(&e))?;
    let meta = file.metadata().map_err(|e| failed(&e))?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(failed(&"not a regular file with one link"));
    }
    file.set_len(0).map_err(|e| failed(&e))?;
    file.write_all(text.as_bytes()).map_err(|e| failed(&e))
}
