#!/bin/sh
# Manual check, not part of `cargo test`: runs scenarios/web-restore.yaml and
# its runbook (runbooks/web-restore.md, twice, for check: idempotent) by hand on
# this host, as `firedrill run` will, and checks that no web server of the run
# is left. Needs python3 with PyYAML (python3-yaml), tar, and a free port 28080.
#
#   tests/scripts/web-drill-by-hand.sh [--keep]
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if ss -ltnH 2>/dev/null | grep -q '127\.0\.0\.1:28080 '; then
  echo "port 28080 is in use; is another run going?" >&2
  exit 4
fi
python3 -B "$here/drill_by_hand.py" "$repo/scenarios/web-restore.yaml" "$@"
rc=$?
if ss -ltnH 2>/dev/null | grep -q '127\.0\.0\.1:28080 '; then
  echo "something still listens on port 28080 after the drill:" >&2
  ss -ltnpH 2>/dev/null | grep '127\.0\.0\.1:28080 ' >&2
  exit 1
fi
echo "no web server left running"
exit "$rc"
