//! `firedrill cluster-id`: the identity a `cluster` target pins.

use crate::error::{EXIT_OK, Error};
use crate::target::cluster;

/// Prints the UID of the `kube-system` namespace of the cluster a context
/// reaches. A kubeconfig or context that is not there is invalid input, a
/// cluster that does not answer an error.
pub(super) fn cluster_id(kubeconfig: &str, context: Option<&str>) -> Result<i32, Error> {
    if context.is_none() && kubeconfig != cluster::IN_CLUSTER {
        return Err(Error::Kubeconfig(format!(
            "--context is required (unless --kubeconfig in-cluster); `kubectl config get-contexts --kubeconfig {kubeconfig}` lists them"
        )));
    }
    let config = cluster::source_kubeconfig(kubeconfig, context)
        .map_err(|error| Error::Kubeconfig(error.to_string()))?;
    let runtime = tokio::runtime::Runtime::new().map_err(Error::Runtime)?;
    let uid = runtime
        .block_on(cluster::cluster_id(config, kubeconfig))
        .map_err(|error| Error::Cluster(error.to_string()))?;
    println!("{uid}");
    Ok(EXIT_OK)
}
