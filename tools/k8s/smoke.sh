#!/bin/sh
# Smoke test of the locally built control plane: create a kwok cluster with
# kwokctl's binary runtime (no network), add simulated nodes, run a Deployment
# whose simulated pods become Running, make a node NotReady and Ready again,
# kill kube-apiserver and start it again, delete the cluster, and check that
# no process of it is left.
#
# Everything lives in a scratch directory: the kubeconfig, kubectl's cache and
# kwokctl's work dir (KWOK_WORKDIR), so ~/.kube and ~/.kwok are never touched.
# The binaries come from FIREDRILL_K8S_BIN, else from .ci/install-k8s's cache
# (run .ci/install-k8s first). Exits non-zero on any failure.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${FIREDRILL_K8S_BIN:-$("$ROOT/.ci/install-k8s" --print-bin-dir)}
CONFIG=${FIREDRILL_KWOK_CONFIG:-$(dirname "$BIN")/kwok.yaml}
for f in kwokctl kwok kubectl kube-apiserver etcd; do
    [ -x "$BIN/$f" ] || { echo "smoke: $BIN/$f missing; run .ci/install-k8s" >&2; exit 1; }
done
[ -f "$CONFIG" ] || { echo "smoke: $CONFIG missing; run .ci/install-k8s" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/firedrill-kwok-smoke.XXXXXX")
NAME=smoke-$$
KUBECONFIG="$WORK/kubeconfig"
KWOK_WORKDIR="$WORK/kwok"
KUBECACHEDIR="$WORK/kube-cache"
PATH="$BIN:$PATH"
export KUBECONFIG KWOK_WORKDIR KUBECACHEDIR PATH
CLUSTER_DIR="$KWOK_WORKDIR/clusters/$NAME"

kwokctl() { command kwokctl --config "$CONFIG" --name "$NAME" "$@"; }
k() { kubectl --kubeconfig "$KUBECONFIG" --request-timeout=10s "$@"; }
now() { date +%s.%N; }
since() { echo "$(now) $1" | awk '{ printf "%.1f", $1 - $2 }'; }
step() { echo "smoke: $*"; }

# The pids of every process of the cluster, from kwokctl's pid files
# (CLUSTER_DIR/pids/COMPONENT.pid, no trailing newline).
cluster_pids() {
    for f in "$CLUSTER_DIR"/pids/*.pid; do
        [ -f "$f" ] && printf '%s ' "$(cat "$f")"
    done
    return 0
}
# Those of PIDS still running (a zombie waiting to be reaped has stopped).
alive() {
    for p in $1; do
        state=$(ps -o stat= -p "$p" 2>/dev/null) || continue
        case $state in Z*) ;; *) printf '%s ' "$p" ;; esac
    done
}

PIDS=
cleanup() {
    status=$?
    trap - EXIT INT TERM HUP
    if [ -d "$CLUSTER_DIR" ]; then
        PIDS="$PIDS $(cluster_pids)"
        command kwokctl --config "$CONFIG" --name "$NAME" delete cluster \
            --kubeconfig "$KUBECONFIG" >"$WORK/delete.log" 2>&1 || cat "$WORK/delete.log" >&2
    fi
    left=$(alive "$PIDS")
    if [ -n "$left" ]; then
        echo "smoke: FAIL: processes left after delete: $left" >&2
        kill -9 $left 2>/dev/null || true
        status=1
    fi
    if [ "$status" -ne 0 ] && [ -d "$CLUSTER_DIR/logs" ]; then
        for f in "$CLUSTER_DIR"/logs/*.log; do
            echo "---- $f (tail)" >&2; tail -n 20 "$f" >&2
        done
    fi
    rm -rf "$WORK"
    [ "$status" -eq 0 ] && echo "smoke: OK" || echo "smoke: FAIL" >&2
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

step "create cluster $NAME (binary runtime, $CONFIG)"
# kwokctl picks free ports by probing them, and the components bind them only
# later: two creates at once can pick the same ports. Take turns, until the
# API server answers. kwokctl create exits 0 even when the cluster never
# became ready, so readiness is checked here.
exec 9>"${TMPDIR:-/tmp}/firedrill-kwokctl-create.lock"
flock 9
t=$(now)
kwokctl create cluster --runtime binary --kubeconfig "$KUBECONFIG" --wait 2m
until k get --raw /readyz >/dev/null 2>&1; do
    [ "$(since "$t" | cut -d. -f1)" -lt 120 ] || { echo "smoke: API not ready" >&2; exit 1; }
    sleep 0.2
done
flock -u 9
step "created and ready in $(since "$t")s"
if [ -n "$(ls -A "$KWOK_WORKDIR/cache" 2>/dev/null)" ]; then
    echo "smoke: kwokctl downloaded something:" >&2; ls -R "$KWOK_WORKDIR/cache" >&2; exit 1
fi
PIDS=$(cluster_pids)
k get ns

step "two simulated nodes"
kwokctl scale node --replicas 2
k wait --for=condition=Ready node --all --timeout=60s
k get nodes

step "a Deployment whose simulated pods run"
k create deployment smoke --image=registry.invalid/smoke:never-pulled --replicas=2
k rollout status deployment/smoke --timeout=120s
k wait --for=jsonpath='{.status.phase}'=Running pod -l app=smoke --timeout=60s
k get pods -o wide

step "node-000000 stops (its Lease taken from kwok) and comes back (the Lease expired)"
# kwok renews a node's Lease, and updates the node, only while it holds that
# Lease; held by another identity, the node is left alone, as if its kubelet
# had stopped. An expired Lease is taken back within kwok's renew interval.
k patch lease -n kube-node-lease node-000000 --type=merge -p "{\"spec\":{\"holderIdentity\":\"firedrill-smoke\",\"leaseDurationSeconds\":86400,\"renewTime\":\"$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)\"}}"
t=$(now)
k wait --for=condition=Ready=Unknown node/node-000000 --timeout=90s
step "node-000000 NotReady after $(since "$t")s"
k patch lease -n kube-node-lease node-000000 --type=merge -p '{"spec":{"leaseDurationSeconds":1,"renewTime":"2000-01-01T00:00:00.000000Z"}}'
t=$(now)
k wait --for=condition=Ready node/node-000000 --timeout=60s
step "node-000000 Ready again after $(since "$t")s"
# The node lifecycle controller set Ready=False on the node's pods; a kubelet
# would report them ready again, kwok does not: do what the kubelet would.
for pod in $(k get pods --field-selector spec.nodeName=node-000000 -o name); do
    k patch "$pod" --subresource=status \
        -p "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}]}}"
done
k rollout status deployment/smoke --timeout=60s

step "kube-apiserver down (SIGKILL to its pid file) and back (kwokctl start cluster)"
apiserver=$(cat "$CLUSTER_DIR/pids/kube-apiserver.pid")
kill -KILL "$apiserver"
# kwokctl takes a pid that still exists as running (a zombie too), so wait
# until it is reaped before asking kwokctl to start what is missing.
t=$(now)
while [ -n "$(ps -o pid= -p "$apiserver")" ]; do
    [ "$(since "$t" | cut -d. -f1)" -lt 60 ] || { echo "smoke: pid $apiserver still there" >&2; exit 1; }
    sleep 0.2
done
if k get ns >/dev/null 2>&1; then echo "smoke: API still answers with kube-apiserver killed" >&2; exit 1; fi
t=$(now)
kwokctl start cluster
until k get --raw /readyz >/dev/null 2>&1; do
    [ "$(since "$t" | cut -d. -f1)" -lt 60 ] || { echo "smoke: API not ready 60 s after start" >&2; exit 1; }
    sleep 0.2
done
step "kube-apiserver ready again $(since "$t")s after kwokctl start cluster"
PIDS="$PIDS $(cluster_pids)"
k rollout status deployment/smoke --timeout=60s

step "delete cluster"
PIDS="$PIDS $(cluster_pids)"
kwokctl delete cluster --kubeconfig "$KUBECONFIG"
[ ! -e "$CLUSTER_DIR" ] || { echo "smoke: $CLUSTER_DIR left after delete" >&2; exit 1; }
