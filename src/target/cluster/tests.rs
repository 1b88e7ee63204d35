//! The cluster target against files and a mock API server: what the run's
//! kubeconfig holds, the identity pin, and the requests an API fault makes.

use std::collections::BTreeMap;

use http::{Request, Response};
use kube::client::Body;
use serde_json::json;

use super::*;
use crate::event::Emitter;
use crate::target::kube::mock::{Handle, assert_no_more, ex, identity, serve};
use crate::target::kube::{KubeDelete, PodKillFault};

const KUBECONFIG: &str = r#"apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod-cluster
  cluster: {server: "https://prod.example:6443", certificate-authority: certs/prod-ca.crt}
- name: staging-cluster
  cluster: {server: "https://staging.example:6443", certificate-authority-data: QUJD}
users:
- name: prod-admin
  user: {token: prod-secret}
- name: staging-user
  user: {client-certificate: certs/staging.crt, client-key: certs/staging.key}
contexts:
- name: prod
  context: {cluster: prod-cluster, user: prod-admin}
- name: staging-eu
  context: {cluster: staging-cluster, user: staging-user, namespace: shop}
"#;

fn spec(kubeconfig: &str, context: Option<&str>, uid: &str) -> ClusterSpec {
    ClusterSpec {
        kubeconfig: Located::new(kubeconfig.to_owned()),
        context: context.map(|c| Located::new(c.to_owned())),
        uid: Located::new(uid.to_owned()),
    }
}

fn ctx(run_dir: &Path) -> RunContext {
    RunContext {
        run_id: "r1".into(),
        run_dir: run_dir.to_path_buf(),
        workdir: run_dir.join("work"),
        scenario_dir: PathBuf::from("/drills/scenarios"),
        env: BTreeMap::from([("NS".to_owned(), "shop".to_owned())]),
        seed: 42,
        emitter: Emitter::new(Vec::new()),
    }
}

#[test]
fn the_copy_holds_one_context_its_cluster_and_user_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, KUBECONFIG).unwrap();
    let copy = one_context(&path, "staging-eu").unwrap();
    let text = serde_json::to_string(&copy).unwrap();
    assert!(!text.contains("prod"), "another context leaked: {text}");
    assert_eq!(copy.current_context.as_deref(), Some("staging-eu"));
    assert_eq!(copy.clusters.len(), 1);
    assert_eq!(copy.auth_infos.len(), 1);
    let user = copy.auth_infos[0].auth_info.as_ref().unwrap();
    // Relative file references point at the original's directory.
    assert_eq!(
        user.client_certificate.as_deref(),
        Some(dir.path().join("certs/staging.crt").to_str().unwrap())
    );
    assert_eq!(
        copy.contexts[0]
            .context
            .as_ref()
            .unwrap()
            .namespace
            .as_deref(),
        Some("shop")
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), KUBECONFIG);

    let Err(TargetError::Unavailable(missing)) = one_context(&path, "stagin") else {
        panic!("an unknown context must fail");
    };
    assert!(
        missing.contains("no context `stagin` (contexts: prod, staging-eu)"),
        "{missing}"
    );
}

#[test]
fn in_cluster_uses_the_service_account_token_file_and_ca() {
    let sa = Path::new("/var/run/secrets/kubernetes.io/serviceaccount");
    let config = in_cluster_kubeconfig(sa, "10.96.0.1", "443");
    let cluster = config.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some("https://10.96.0.1:443"));
    assert_eq!(
        cluster.certificate_authority.as_deref(),
        Some("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
    );
    let user = config.auth_infos[0].auth_info.as_ref().unwrap();
    // Read on every use: the kubelet rotates the token.
    assert_eq!(
        user.token_file.as_deref(),
        Some("/var/run/secrets/kubernetes.io/serviceaccount/token")
    );
    assert!(user.token.is_none());
    let v6 = in_cluster_kubeconfig(sa, "fd00::1", "443");
    assert_eq!(
        v6.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
        Some("https://[fd00::1]:443")
    );
}

#[test]
fn home_is_expanded_in_the_kubeconfig_path() {
    let home = std::env::var("HOME").unwrap();
    assert_eq!(
        expand_home("~/.kube/staging.yaml"),
        Path::new(&home).join(".kube/staging.yaml")
    );
    assert_eq!(expand_home("~"), Path::new(&home));
    assert_eq!(expand_home("/etc/kube"), Path::new("/etc/kube"));
    assert_eq!(expand_home("~other/x"), Path::new("~other/x"));
}

#[test]
fn the_spec_needs_a_context_unless_in_cluster_and_a_real_uid() {
    let problems = |spec: &ClusterSpec| {
        let mut found = Vec::new();
        check_spec(spec, &mut found);
        found.iter().map(|p| p.message.clone()).collect::<Vec<_>>()
    };
    let uid = "5c1d6a2e-7b9f-4e0a-9c3d-2f1e8b7a6c5d";
    assert!(problems(&spec("~/.kube/config", Some("staging-eu"), uid)).is_empty());
    assert!(problems(&spec(IN_CLUSTER, None, uid)).is_empty());
    assert_eq!(
        problems(&spec("~/.kube/config", None, uid)),
        ["the cluster target needs `context`"]
    );
    assert_eq!(
        problems(&spec(IN_CLUSTER, Some("x"), uid)),
        ["`context` does not apply to `kubeconfig: in-cluster`"]
    );
    assert_eq!(
        problems(&spec("~/.kube/config", Some("c"), "8c6a2f1e-...")),
        ["`uid: 8c6a2f1e-...` is not a namespace UID"]
    );
}

#[test]
fn lifecycle_and_node_faults_are_refused_at_validation() {
    for kind in ["delete_cluster", "stop_node", "control_plane_down", "kill"] {
        let mut raw = RawFault::default();
        match kind {
            "stop_node" => raw.stop_node = Some(Default::default()),
            "kill" => {
                raw.kill = Some(crate::target::local::KillFault {
                    service: crate::located::OneOrMany(vec![]),
                    signal: None,
                })
            }
            "delete_cluster" => raw.delete_cluster = Some(crate::target::Empty {}),
            _ => raw.control_plane_down = Some(crate::target::Empty {}),
        }
        let found = crate::target::check_fault(parse_fault, &raw).unwrap_err();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(&format!(
                "fault `{kind}` is not supported by the cluster target | "
            )) && found[0].contains("no lifecycle: API faults and `run` only")
                && found[0].ends_with("cluster target faults: pod_kill, delete, drain_node, run"),
            "{found:?}"
        );
    }
}

/// A cluster target whose kubeconfig is a file in `dir`, talking to the mock.
fn target(dir: &Path, uid: &str, scope: &[&str]) -> (ClusterTarget, Handle) {
    let path = dir.join("config");
    std::fs::write(&path, KUBECONFIG).unwrap();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let target = ClusterTarget::new(
        &spec(path.to_str().unwrap(), Some("staging-eu"), uid),
        Scope::new(scope.iter().map(|s| (*s).to_owned()), false, "`scope`"),
    )
    .with_client(Client::new(service, "default"));
    (target, handle)
}

#[tokio::test]
async fn setup_refuses_a_cluster_whose_uid_is_not_the_pinned_one_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let (target, handle) = target(dir.path(), "uid-pinned", &["shop"]);
    let server = serve(handle, vec![identity("uid-other")]);
    let result = target.setup(&ctx(&run_dir)).await;
    let Err(TargetError::Refused(why)) = result else {
        panic!("{result:?}");
    };
    assert!(
        why.contains("uid-other") && why.contains("uid-pinned"),
        "{why}"
    );
    // The copy was written, private, with the one context.
    use std::os::unix::fs::PermissionsExt;
    let copy = run_dir.join("kubeconfig");
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let written = Kubeconfig::read_from(&copy).unwrap();
    assert_eq!(written.current_context.as_deref(), Some("staging-eu"));
    assert_eq!(written.contexts.len(), 1);
    // Nothing pinned: every later fault is refused too.
    assert_eq!(target.conn.pinned(), None);
    drop(target);
    assert_no_more(server).await;
}

#[tokio::test]
async fn api_faults_check_the_identity_then_the_scope_then_act() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let (target, handle) = target(dir.path(), "uid-1", &["shop", "kube-system"]);
    let server = serve(handle, vec![identity("uid-1")]);
    let vars = target.setup(&ctx(&run_dir)).await.unwrap();
    assert_eq!(
        vars["KUBECACHEDIR"],
        run_dir.join("kube-cache").display().to_string()
    );
    let handle = server.await.unwrap();

    // In scope: identity, then the deletes.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "shop"}});
    let server = serve(
        handle,
        vec![
            identity("uid-1"),
            ex(
                "DELETE",
                "/api/v1/namespaces/shop/configmaps/a?",
                cm.clone(),
            )
            .body(json!({"propagationPolicy": "Background"})),
        ],
    );
    let delete = FaultSpec::Kube(KubeFault::Delete(KubeDelete {
        kind: "ConfigMap".into(),
        namespace: Some("${NS}".into()),
        name: Some("a".into()),
        selector: None,
    }));
    let injected = target
        .inject("hit", &delete, &ctx(&run_dir).env, &ctx(&run_dir))
        .await
        .unwrap();
    assert_eq!(injected.targets, ["ConfigMap/shop/a"]);
    let handle = server.await.unwrap();

    // kube-system, though the drill lists it: identity only, then refused.
    let server = serve(handle, vec![identity("uid-1")]);
    let kill = FaultSpec::Kube(KubeFault::PodKill(PodKillFault {
        namespace: "kube-system".into(),
        selector: "k8s-app=kube-dns".into(),
        count: None,
        percent: None,
    }));
    let result = target
        .inject("hit", &kill, &ctx(&run_dir).env, &ctx(&run_dir))
        .await;
    assert!(
        matches!(&result, Err(TargetError::Refused(m)) if m.contains("kube-system is never in scope")),
        "{result:?}"
    );
    let handle = server.await.unwrap();

    // Another cluster behind the same kubeconfig: refused before anything.
    let server = serve(handle, vec![identity("uid-2")]);
    let result = target
        .inject("hit", &delete, &ctx(&run_dir).env, &ctx(&run_dir))
        .await;
    assert!(
        matches!(&result, Err(TargetError::Refused(m)) if m.contains("kube-system UID uid-2, expected uid-1")),
        "{result:?}"
    );
    // The cluster is not the run's: teardown touches nothing.
    target.teardown(&ctx(&run_dir), false).await;
    drop(target);
    assert_no_more(server).await;
}
