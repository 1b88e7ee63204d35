#!/bin/sh
# Manual check, not part of `cargo test`: runs scenarios/etcd-quorum-loss.yaml
# and its runbook (runbooks/etcd-restore.md, twice, for check: idempotent) by
# hand on this host, as `firedrill run` will, and checks that nothing it
# started is left running afterwards.
#
# Needs: etcd and etcdctl 3.4+ (Debian: apt-get install etcd-server
# etcd-client), python3 with PyYAML (python3-yaml), free loopback ports
# 23791-23793 and 23801-23803.
#
#   tests/scripts/etcd-drill-by-hand.sh [--keep] [--rerun-each]
#       [--runbook FILE] [--var NAME=VALUE]...
#
# --rerun-each also runs every runbook step twice in a row; --runbook swaps in
# another runbook (tests/fixtures/runbooks/etcd-restore-stale.md must fail at
# its restore step); --var moves the members to other ports, e.g.
#   --var CLIENT_1=http://127.0.0.1:24791 ... --var PEER_3=http://127.0.0.1:24803
# (the port checks below then only cover the default ports).
#
# Exit 0: the cluster lost quorum, the runbook restored it (and a second run of
# every step succeeded), the canary keys came back, recovery time and data loss
# are within the drill's objectives, and no etcd of the run is left.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

for tool in etcd etcdctl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 4; }
done
if ss -ltnH 2>/dev/null | grep -Eq '127\.0\.0\.1:238(0[1-3]|9[1-3]) '; then
  echo "ports 23791-23793/23801-23803 are in use; is another run going?" >&2
  exit 4
fi

# Only etcd processes that were not there before count as left behind.
before=$(pgrep -x etcd | sort)
python3 -B "$here/drill_by_hand.py" "$repo/scenarios/etcd-quorum-loss.yaml" "$@"
rc=$?

after=$(pgrep -x etcd | sort)
left=$(printf '%s\n' "$after" | grep -vxF -e "$before" -e '' || true)
if [ -n "$left" ]; then
  echo "etcd processes left running after the drill:" >&2
  for pid in $left; do ps -o pid,ppid,stat,args -p "$pid" >&2; done
  exit 1
fi
if ss -ltnH 2>/dev/null | grep -Eq '127\.0\.0\.1:238(0[1-3]|9[1-3]) '; then
  echo "something still listens on the drill's ports" >&2
  exit 1
fi
echo "no etcd left running"
exit "$rc"
