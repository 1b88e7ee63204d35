#!/bin/sh
# Instructions per call of one benchmark, counted by callgrind: steadier than
# wall-clock time on a shared machine, so a change can be compared by a
# fraction of a percent.
#
# usage: benches/callgrind.sh BENCH FILTER [CALLS]
#   benches/callgrind.sh score journal/100k-events
#   benches/callgrind.sh drill parse_source/chain-1000 5
#
# FILTER is a benchmark's whole name, as the table of `cargo bench` shows it.
# The bench binary runs twice under callgrind: the benchmark is called once,
# then 1 + CALLS times (default 10); the difference divided by CALLS is the
# cost of one call, set-up excluded. Only the bench's own
# process is counted (not the shells a drill starts). Counts are for
# comparing two versions of the code, not for converting into time:
# valgrind's CPU differs from the real one (each byte a `rep movsb` copies
# counts, vector paths chosen at run time may differ). The profile of the
# longer run is kept in target/callgrind/ for callgrind_annotate.
set -eu
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
    grep '^# usage' -A2 "$0" | sed 's/^# //' >&2
    exit 2
fi
bench=$1
filter=$2
calls=${3:-10}
case $calls in
    '' | *[!0-9]* | 0) echo "CALLS must be a positive number, not '$calls'" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 4; }

exe=$(cargo bench --bench "$bench" --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -n 1)
if [ -z "$exe" ] || [ ! -x "$exe" ]; then
    echo "no bench binary for '$bench' (see benches/*.rs)" >&2
    exit 2
fi
mkdir -p target/callgrind
name=$(printf '%s' "$filter" | tr -c 'A-Za-z0-9._-' '_')

# Instructions of a whole run of the binary with each benchmark called $1 times.
instructions() {
    out=$2
    log=$(FIREDRILL_BENCH_REPEAT=$1 valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$exe" --exact "$filter" 2>&1 >/dev/null)
    printf '%s\n' "$log" | sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | tail -n 1
}

if [ -z "$("$exe" --exact "$filter")" ]; then
    echo "no benchmark of $bench is named '$filter' (see the table of cargo bench --bench $bench)" >&2
    exit 2
fi
once=$(instructions 1 /dev/null)
more=$(instructions $((calls + 1)) "target/callgrind/$bench.$name.out")
if [ -z "$once" ] || [ -z "$more" ]; then
    echo "callgrind reported no instruction count" >&2
    exit 1
fi
echo "$bench $filter: $(( (more - once) / calls )) instructions per call ($calls calls)"
echo "profile: target/callgrind/$bench.$name.out (callgrind_annotate it)"
