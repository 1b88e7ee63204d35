//! The ports of a kwok cluster, chosen by firedrill (docs/drill-format.md,
//! "kwok"). Left to itself, kwokctl takes the first port below 32767 it can
//! bind at that moment, avoiding only the ports of clusters in the same
//! `KWOK_WORKDIR`: a port of a component that is down (the API server of a
//! `control_plane_down` fault) is free for a moment, another cluster
//! created on the host meanwhile takes it, and the component cannot start
//! again. So firedrill chooses the six ports a binary-runtime cluster uses
//! itself, at random in a range below kwokctl's scan and below the kernel's
//! ephemeral ports, each checked bindable, and writes them into the
//! kwokctl configuration of the run's kwok home, where every `kwokctl
//! create cluster` in that home (a runbook's too) reads them.
//!
//! The registry (`${TMPDIR:-/tmp}/firedrill-kwok-ports`, one JSON object a
//! line, edited under an `flock` of the file itself) keeps two kwok homes
//! on one host from ever getting the same port, also while a component is
//! down: an entry names its kwok home, its ports and its owner (pid, start
//! time and boot of the process that reserved them). An entry whose owner is
//! gone or whose home no longer exists is dropped by the next edit; a
//! resumed run (a new runner) takes its home's entry over.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The range ports are chosen from when the kernel's ephemeral range does
/// not get in the way: below kwokctl's own downward scan from 32767.
pub const RANGE: (u16, u16) = (20000, 29999);

/// Fewer free ports than this in the range left below the ephemeral ports,
/// and the whole [`RANGE`] is used (every port is still checked bindable).
const MIN_RANGE: u16 = 1000;

/// How many random ports are tried before giving up.
const ATTEMPTS: usize = 5000;

/// The ports of a binary-runtime kwok cluster, by component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KwokPorts {
    /// kube-apiserver's secure port.
    pub kube_apiserver: u16,
    /// etcd's client port.
    pub etcd: u16,
    /// etcd's peer port.
    pub etcd_peer: u16,
    /// kube-controller-manager's port.
    pub kube_controller_manager: u16,
    /// kube-scheduler's port.
    pub kube_scheduler: u16,
    /// kwok's (the controller's) port.
    pub kwok_controller: u16,
}

/// The components of a binary-runtime cluster as their pid files in the
/// cluster's `pids/` name them, with the kwokctl option of each port, in
/// the order of [`KwokPorts::all`].
const OPTIONS: [(&str, &str); 6] = [
    ("kube-apiserver", "kubeApiserverPort"),
    ("etcd", "etcdPort"),
    ("etcd", "etcdPeerPort"),
    ("kube-controller-manager", "kubeControllerManagerPort"),
    ("kube-scheduler", "kubeSchedulerPort"),
    ("kwok-controller", "kwokControllerPort"),
];

impl KwokPorts {
    /// The six ports.
    pub fn all(&self) -> [u16; 6] {
        [
            self.kube_apiserver,
            self.etcd,
            self.etcd_peer,
            self.kube_controller_manager,
            self.kube_scheduler,
            self.kwok_controller,
        ]
    }

    /// `(component, kwokctl option, port)`.
    pub fn by_component(&self) -> [(&'static str, &'static str, u16); 6] {
        let all = self.all();
        std::array::from_fn(|i| (OPTIONS[i].0, OPTIONS[i].1, all[i]))
    }

    fn from_ports(p: [u16; 6]) -> KwokPorts {
        KwokPorts {
            kube_apiserver: p[0],
            etcd: p[1],
            etcd_peer: p[2],
            kube_controller_manager: p[3],
            kube_scheduler: p[4],
            kwok_controller: p[5],
        }
    }

    /// The ports a kwokctl configuration's `options` give, if it gives all six.
    fn from_options(options: &Value) -> Option<KwokPorts> {
        let mut ports = [0u16; 6];
        for (slot, (_, key)) in ports.iter_mut().zip(OPTIONS) {
            *slot = u16::try_from(options.get(key)?.as_u64()?)
                .ok()
                .filter(|p| *p != 0)?;
        }
        Some(KwokPorts::from_ports(ports))
    }
}

/// Who reserved ports: a process, for good (pid, start time and boot: the
/// registry may outlive a reboot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Its pid.
    pub pid: u32,
    /// When it started, in clock ticks after boot.
    pub start: u64,
    /// The boot it runs in (`/proc/sys/kernel/random/boot_id`).
    #[serde(default)]
    pub boot: Option<String>,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start: crate::rundir::start_time(pid).unwrap_or(0),
            boot: crate::leftovers::boot_id(),
        }
    }

    fn alive(&self) -> bool {
        let this_boot = match (&self.boot, crate::leftovers::boot_id()) {
            (Some(recorded), Some(now)) => *recorded == now,
            _ => true,
        };
        this_boot && crate::rundir::runner_alive(self.pid, Some(self.start))
    }
}

/// One reservation: a kwok home's ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    home: PathBuf,
    owner: Owner,
    ports: KwokPorts,
}

impl Entry {
    /// Still holds its ports: its owner runs and its home exists.
    fn live(&self) -> bool {
        self.owner.alive() && self.home.is_dir()
    }
}

/// The host's registry of reserved kwok ports.
pub struct Registry {
    path: PathBuf,
}

/// The registry file: an `flock`ed file, read and rewritten whole.
struct Locked {
    file: std::fs::File,
    path: PathBuf,
}

/// Opens (creating it, mode 0600) a file that firedrill runs of this user
/// share in the temp directory, where anybody may have put something first:
/// a symlink is never followed, and it must be a regular file with one
/// link (a hard link to another file would be written through), owned by
/// this user. It is made readable by nobody else: anyone who can open it
/// can `flock` it, and hold every run's lock for ever.
pub fn open_shared(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let fix = "remove it, or set TMPDIR to a directory of your own";
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => format!(
                "{} is a symbolic link, which firedrill never follows in a shared directory: {fix}",
                path.display()
            ),
            _ => format!("cannot open {}: {e}", path.display()),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.file_type().is_file() || meta.nlink() != 1 {
        return Err(format!(
            "{} is not a regular file with one link: {fix}",
            path.display()
        ));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not to this user (uid {me}): {fix}",
            path.display(),
            meta.uid(),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot make {} private: {e}", path.display()))?;
    }
    Ok(file)
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::at(std::env::temp_dir().join("firedrill-kwok-ports"))
    }
}

impl Registry {
    /// The registry in the file `path`.
    pub fn at(path: PathBuf) -> Registry {
        Registry { path }
    }

    fn lock(&self) -> Result<Locked, String> {
        // Its entries decide which ports a run may take: one that somebody
        // else could write is refused.
        let file = open_shared(&self.path)?;
        file.lock()
            .map_err(|e| format!("cannot lock {}: {e}", self.path.display()))?;
        Ok(Locked {
            file,
            path: self.path.clone(),
        })
    }

    /// Reserves six ports for the kwok home `home` (an existing directory)
    /// for `owner`: free on this host now (bindable, nobody listening) and
    /// reserved for no other live home. An earlier reservation of the same
    /// home is replaced.
    pub fn reserve(&self, home: &Path, owner: Owner) -> Result<KwokPorts, String> {
        let home = canonical(home)?;
        let mut locked = self.lock()?;
        let mut entries = locked.live_entries(&home);
        let taken: Vec<u16> = entries.iter().flat_map(|e| e.ports.all()).collect();
        let ports = choose(&taken, &mut rand::rng())?;
        entries.push(Entry { home, owner, ports });
        locked.save(&entries)?;
        Ok(ports)
    }

    /// Reserves the given ports (an existing cluster's) for `home` and
    /// `owner`, taking over the home's earlier reservation (a resumed run's
    /// new runner); refused if another live home holds one of them.
    pub fn claim(&self, home: &Path, ports: KwokPorts, owner: Owner) -> Result<(), String> {
        let home = canonical(home)?;
        let mut locked = self.lock()?;
        let mut entries = locked.live_entries(&home);
        for entry in &entries {
            if let Some(port) = ports
                .all()
                .into_iter()
                .find(|p| entry.ports.all().contains(p))
            {
                return Err(format!(
                    "port {port} of this kwok cluster is reserved for the kwok cluster in {} (firedrill pid {}; registry {})",
                    entry.home.display(),
                    entry.owner.pid,
                    self.path.display()
                ));
            }
        }
        entries.push(Entry { home, owner, ports });
        locked.save(&entries)
    }

    /// Drops the reservation of `home`.
    pub fn release(&self, home: &Path) -> Result<(), String> {
        let home = canonical(home).unwrap_or_else(|_| home.to_path_buf());
        let mut locked = self.lock()?;
        let entries = locked.live_entries(&home);
        locked.save(&entries)
    }

    /// The live reservations: `(home, ports)`.
    pub fn reserved(&self) -> Result<Vec<(PathBuf, KwokPorts)>, String> {
        let mut locked = self.lock()?;
        Ok(locked
            .live_entries(Path::new(""))
            .into_iter()
            .map(|e| (e.home, e.ports))
            .collect())
    }
}

impl Locked {
    /// The entries that still hold their ports, but any of `home`.
    fn live_entries(&mut self, home: &Path) -> Vec<Entry> {
        let mut text = String::new();
        let _ = self.file.seek(SeekFrom::Start(0));
        if let Err(e) = self.file.read_to_string(&mut text) {
            tracing::warn!("cannot read {}: {e}", self.path.display());
        }
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .filter_map(|line| match serde_json::from_str::<Entry>(line) {
                Ok(entry) => Some(entry),
                Err(e) => {
                    tracing::warn!("{}: dropping a damaged line: {e}", self.path.display());
                    None
                }
            })
            .filter(|e| e.home != home && e.live())
            .collect()
    }

    fn save(&mut self, entries: &[Entry]) -> Result<(), String> {
        let mut text = String::new();
        for entry in entries {
            let line = serde_json::to_string(entry).map_err(|e| e.to_string())?;
            text.push_str(&line);
            text.push('\n');
        }
        let write = |file: &mut std::fs::File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(text.as_bytes())?;
            file.flush()
        };
        write(&mut self.file).map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

fn canonical(home: &Path) -> Result<PathBuf, String> {
    home.canonicalize()
        .map_err(|e| format!("cannot resolve the kwok home {}: {e}", home.display()))
}

/// The range ports are chosen from: [`RANGE`], below the kernel's
/// ephemeral ports (`/proc/sys/net/ipv4/ip_local_port_range`), which
/// outgoing connections take and which a listener can then not have.
pub fn range() -> (u16, u16) {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut fields = text.split_whitespace().map(|f| f.parse::<u16>().ok());
            Some((fields.next()??, fields.next()??))
        });
    range_below(ephemeral)
}

fn range_below(ephemeral: Option<(u16, u16)>) -> (u16, u16) {
    let (low, high) = RANGE;
    match ephemeral {
        // The ephemeral ports start inside the range: stop below them.
        Some((first, last)) if first <= high && last >= low => {
            let top = first.saturating_sub(1);
            if top >= low && top - low + 1 >= MIN_RANGE {
                (low, top)
            } else {
                RANGE
            }
        }
        _ => RANGE,
    }
}

/// Six distinct ports of [`range`], none in `taken`, each free now.
fn choose(taken: &[u16], rng: &mut impl Rng) -> Result<KwokPorts, String> {
    let (low, high) = range();
    choose_in(low, high, taken, rng, free)
}

fn choose_in(
    low: u16,
    high: u16,
    taken: &[u16],
    rng: &mut impl Rng,
    free: impl Fn(u16) -> bool,
) -> Result<KwokPorts, String> {
    let mut chosen: Vec<u16> = Vec::with_capacity(6);
    let mut tried = std::collections::BTreeSet::new();
    let candidates = usize::from(high - low) + 1;
    for _ in 0..ATTEMPTS {
        if tried.len() == candidates {
            break;
        }
        let port = rng.random_range(low..=high);
        if !tried.insert(port) {
            continue;
        }
        if !taken.contains(&port) && free(port) {
            chosen.push(port);
            if chosen.len() == 6 {
                let mut ports = [0u16; 6];
                ports.copy_from_slice(&chosen);
                return Ok(KwokPorts::from_ports(ports));
            }
        }
    }
    Err(format!(
        "no six free ports for a kwok cluster in {low}-{high} ({} ports tried, {} reserved by firedrill runs on this host)",
        tried.len(),
        taken.len()
    ))
}

/// `port` can be bound on loopback and on every address, as kwokctl checks
/// too: nobody listens on it (a bind fails where a socket listens, and
/// with `SO_REUSEADDR`, as the components bind, succeeds where only
/// connections linger).
pub fn free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        && TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// The kwokctl configuration for a kwok home: the documents of `source`
/// (the configuration that points at the binaries, if any), with `ports`
/// in the `options` of its KwokctlConfiguration (one is added if it has
/// none). Written as JSON documents, which are YAML too.
pub fn config_with_ports(source: Option<&Path>, ports: &KwokPorts) -> Result<String, String> {
    let mut docs: Vec<Value> = match source {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            serde_saphyr::from_multiple::<Value>(&text)
                .map_err(|e| format!("{} is not YAML kwokctl reads: {e}", path.display()))?
                .into_iter()
                .filter(|doc| !doc.is_null())
                .collect()
        }
        None => Vec::new(),
    };
    let position = docs.iter().position(is_kwokctl_configuration);
    let index = match position {
        Some(index) => index,
        None => {
            docs.push(json!({
                "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
                "kind": "KwokctlConfiguration",
            }));
            docs.len() - 1
        }
    };
    let Some(doc) = docs[index].as_object_mut() else {
        return Err("a KwokctlConfiguration that is not a mapping".to_owned());
    };
    let options = doc.entry("options").or_insert_with(|| json!({}));
    if options.is_null() {
        *options = json!({});
    }
    let Some(options) = options.as_object_mut() else {
        return Err("a KwokctlConfiguration whose `options` is not a mapping".to_owned());
    };
    for (_, key, port) in ports.by_component() {
        options.insert(key.to_owned(), json!(port));
    }
    let mut text = String::from(
        "# Written by firedrill: the configuration kwokctl reads from this kwok home,\n# with the ports firedrill reserved for its cluster (docs/drill-format.md, \"kwok\").\n",
    );
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?);
        text.push('\n');
    }
    Ok(text)
}

fn is_kwokctl_configuration(doc: &Value) -> bool {
    doc.get("kind").and_then(Value::as_str) == Some("KwokctlConfiguration")
}

/// The ports a cluster's own configuration (`clusters/NAME/kwok.yaml`,
/// written by kwokctl when it created the cluster) gives its components.
pub fn cluster_ports(cluster_dir: &Path) -> Option<KwokPorts> {
    // A run directory may be crafted: a FIFO or an endless file is not read.
    let bytes = crate::bounded::read_regular(
        &cluster_dir.join("kwok.yaml"),
        crate::bounded::MAX_INPUT_FILE,
    )
    .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let docs = serde_saphyr::from_multiple::<Value>(&text).ok()?;
    let options = docs
        .iter()
        .find(|d| is_kwokctl_configuration(d))?
        .get("options")?;
    KwokPorts::from_options(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn home(dir: &Path, name: &str) -> PathBuf {
        let home = dir.join(name);
        std::fs::create_dir_all(&home).unwrap();
        home
    }

    #[test]
    fn a_shared_file_planted_as_a_link_a_fifo_or_a_hard_link_is_refused_and_ours_made_private() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        // A link to a file that does not exist yet: following it would
        // create the canary.
        let canary = dir.path().join("canary");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&canary, &link).unwrap();
        let error = open_shared(&link).unwrap_err();
        assert!(error.contains("symbolic link"), "{error}");
        assert!(!canary.exists());
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let error = open_shared(&fifo).unwrap_err();
        assert!(error.contains("not a regular file"), "{error}");
        // A hard link to a file of somebody's: it would be written through.
        let precious = dir.path().join("precious");
        std::fs::write(&precious, "keep me").unwrap();
        let hard = dir.path().join("hard");
        std::fs::hard_link(&precious, &hard).unwrap();
        let error = open_shared(&hard).unwrap_err();
        assert!(error.contains("one link"), "{error}");
        let registry = Registry::at(hard);
        assert!(registry.lock().is_err());
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
        // Ours but readable by others (anyone could flock it): made private.
        let open = dir.path().join("open");
        std::fs::write(&open, "").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(open_shared(&open).is_ok());
        assert_eq!(std::fs::metadata(&open).unwrap().mode() & 0o777, 0o600);
        let fresh = dir.path().join("fresh");
        assert!(open_shared(&fresh).is_ok());
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn two_reservations_never_share_a_port() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::at(dir.path().join("registry"));
        let mut seen = Vec::new();
        for i in 0..20 {
            let ports = registry
                .reserve(&home(dir.path(), &format!("h{i}")), Owner::me())
                .unwrap();
            for port in ports.all() {
                assert!(!seen.contains(&port), "port {port} given twice");
                let (low, high) = range();
                assert!((low..=high).contains(&port), "{port}");
                seen.push(port);
            }
        }
        assert_eq!(registry.reserved().unwrap().len(), 20);
    }

    #[test]
    fn the_ports_a_dead_owner_or_a_gone_home_held_are_free_again() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::at(dir.path().join("registry"));
        let me = Owner::me();
        // The same pid with another start time: a process that is gone.
        let dead = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        let old = home(dir.path(), "old");
        let ports = registry.reserve(&old, dead).unwrap();
        // This process in another boot.
        let rebooted = Owner {
            boot: Some("another-boot".to_owned()),
            ..me.clone()
        };
        let earlier = home(dir.path(), "earlier");
        registry.reserve(&earlier, rebooted).unwrap();
        let gone = home(dir.path(), "gone");
        registry.reserve(&gone, me.clone()).unwrap();
        std::fs::remove_dir(&gone).unwrap();
        assert!(registry.reserved().unwrap().is_empty());
        // A new home may have the dead owner's ports.
        let new = home(dir.path(), "new");
        registry.claim(&new, ports, me).unwrap();
        assert_eq!(
            registry.reserved().unwrap(),
            vec![(new.canonicalize().unwrap(), ports)]
        );
    }

    #[test]
    fn a_resumed_run_takes_its_homes_ports_over_and_nobody_elses() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::at(dir.path().join("registry"));
        let run = home(dir.path(), "run");
        let me = Owner::me();
        // The runner that made the cluster, now gone.
        let killed = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        let ports = registry.reserve(&run, killed).unwrap();
        // The same home claims its cluster's ports again (the new runner).
        registry.claim(&run, ports, me).unwrap();
        assert_eq!(
            registry.reserved().unwrap(),
            vec![(run.canonicalize().unwrap(), ports)]
        );
        // Another home cannot.
        let other = home(dir.path(), "other");
        let refused = registry.claim(&other, ports, Owner::me()).unwrap_err();
        assert!(
            refused.contains(&format!(
                "port {} of this kwok cluster is reserved",
                ports.kube_apiserver
            )) && refused.contains(&run.canonicalize().unwrap().display().to_string()),
            "{refused}"
        );
        registry.release(&run).unwrap();
        registry.claim(&other, ports, Owner::me()).unwrap();
    }

    #[test]
    fn a_bound_port_or_a_reserved_one_is_never_chosen() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let bound = listener.local_addr().unwrap().port();
        assert!(!free(bound));
        // Eight candidates: one bound, one reserved, so the six others.
        let low = bound.saturating_sub(3);
        let high = low + 7;
        let reserved = if bound == low { low + 1 } else { low };
        // The real check for the bound port; its neighbours are somebody
        // else's business.
        let check = |p: u16| p != bound || free(p);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let ports = choose_in(low, high, &[reserved], &mut rng, check).unwrap();
        let mut all = ports.all().to_vec();
        all.sort();
        let expected: Vec<u16> = (low..=high)
            .filter(|p| *p != bound && *p != reserved)
            .collect();
        assert_eq!(all, expected);
        // One candidate fewer: no six free ports, said so.
        let error = choose_in(low, high - 1, &[reserved], &mut rng, check).unwrap_err();
        assert!(error.starts_with("no six free ports"), "{error}");
    }

    #[test]
    fn the_range_stays_below_the_ephemeral_ports() {
        assert_eq!(range_below(Some((32768, 60999))), (20000, 29999));
        assert_eq!(range_below(Some((25000, 60999))), (20000, 24999));
        // Nearly all ephemeral: the whole range, every port still checked.
        assert_eq!(range_below(Some((20100, 60999))), (20000, 29999));
        assert_eq!(range_below(Some((1024, 65535))), (20000, 29999));
        assert_eq!(range_below(None), (20000, 29999));
    }

    #[test]
    fn the_config_gets_the_ports_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("kwok.yaml");
        std::fs::write(
            &source,
            "# comment\napiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokctlConfiguration\noptions:\n  runtime: binary\n  kubeApiserverPort: 1\n---\napiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n",
        )
        .unwrap();
        let ports = KwokPorts::from_ports([20001, 20002, 20003, 20004, 20005, 20006]);
        let text = config_with_ports(Some(&source), &ports).unwrap();
        let docs = serde_saphyr::from_multiple::<Value>(&text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["options"]["runtime"], "binary");
        assert_eq!(docs[1]["kind"], "KwokConfiguration");
        let cluster = dir.path().join("cluster");
        std::fs::create_dir(&cluster).unwrap();
        std::fs::write(cluster.join("kwok.yaml"), &text).unwrap();
        assert_eq!(cluster_ports(&cluster), Some(ports));
        // Without a configuration: one with the ports alone.
        let bare = config_with_ports(None, &ports).unwrap();
        std::fs::write(cluster.join("kwok.yaml"), &bare).unwrap();
        assert_eq!(cluster_ports(&cluster), Some(ports));
    }
}
