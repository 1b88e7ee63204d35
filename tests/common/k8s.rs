//! Where the tests find the Kubernetes tools `.ci/install-k8s` builds.

use std::path::PathBuf;

/// The directory of kube-apiserver, etcd, kwok, kwokctl, kubectl and kind:
/// `FIREDRILL_K8S_BIN`, else `$FIREDRILL_TOOLS_DIR/k8s-current/bin`
/// (default `~/.cache/firedrill/tools`). Fails, saying what to run, when
/// `tools` are not all there: these tests are never skipped.
pub fn bin_dir(tools: &[&str]) -> PathBuf {
    let dir = std::env::var_os("FIREDRILL_K8S_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("FIREDRILL_TOOLS_DIR")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|home| PathBuf::from(home).join(".cache/firedrill/tools"))
                })
                .map(|tools| tools.join("k8s-current/bin"))
        })
        .unwrap_or_default();
    for tool in tools {
        assert!(
            dir.join(tool).is_file(),
            "{} not found: these tests need the Kubernetes tools; run `.ci/install-k8s` (it builds kube-apiserver, etcd, kwok, kwokctl, kubectl and kind into ~/.cache/firedrill/tools) or set FIREDRILL_K8S_BIN to their bin directory",
            dir.join(tool).display()
        );
    }
    dir
}
