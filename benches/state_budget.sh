#!/usr/bin/env bash
# Keyed state larger than its memory budget (issue 11's benchmark): keyed_count with KEYS keys
# (default 10 M) and --state-memory-mb BUDGET_MB (default 1024), uniform keys, 1 s checkpoints.
#   1. a straight run of RECORDS records: throughput, peak RSS, and each checkpoint's duration
#      and size (from the coordinator's log);
#   2. twice: kill -9 after KILL_AFTER seconds, then the same command again, once at the same
#      parallelism and once at 3: how long each subtask took to restore its keyed state (the
#      runtime's "keyed state restored" log lines), with the finishing run's figures.
# Usage: benches/state_budget.sh [RECORDS] [KEYS] [BUDGET_MB] [KILL_AFTER]
#        (defaults 20000000 10000000 1024 20).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill-target}"
RECORDS="${1:-20000000}"
KEYS="${2:-10000000}"
BUDGET_MB="${3:-1024}"
KILL_AFTER="${4:-20}"
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
BIN="${KEYED_COUNT_BIN:-$CARGO_TARGET_DIR/release/examples/keyed_count}"
[ -n "${KEYED_COUNT_BIN:-}" ] || cargo build --release --workspace --all-features --examples >&2
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT

# keyed_count with the common arguments and those given; log in $DIR/log.
job() {
    RUST_BACKTRACE=0 RUST_LOG=rill_runtime::coordinator=info,rill_runtime::task=info /usr/bin/time -f "peak_rss_kb=%M" -o "$DIR/time" \
        "$BIN" --records "$RECORDS" --keys "$KEYS" --checkpoint-interval-ms 1000 --emit none \
        --cache-entries 100000000 --state-memory-mb "$BUDGET_MB" "$@" 2>"$DIR/log"
}

# Checkpoint durations and sizes, and restore times, from the last run's log.
report() {
    local log
    log="$(sed 's/\x1b\[[0-9;]*m//g' "$DIR/log")"
    echo "$log" | grep "checkpoint complete" | sed 's/^.*complete //' | awk '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        n++; d = v["duration_ms"]; sum += d; if (d > max) max = d; bytes = v["bytes"]
    } END { if (n) printf "    checkpoints=%d duration_ms_mean=%d duration_ms_max=%d last_bytes=%s\n", n, sum / n, max, bytes }'
    echo "$log" | grep "keyed state restored" | sed 's/^.*restored //; s/^/    restored: /' || true
}

echo "## 1. straight run: $RECORDS records, $KEYS keys, budget $BUDGET_MB MiB, parallelism 2"
job --parallelism 2 --dir "$DIR/straight" | tail -1 || { sed "s/\x1b\[[0-9;]*m//g" "$DIR/log" | grep -v "^running" | tail -12; exit 1; }
cat "$DIR/time"
report

echo "## 2. kill -9 after ${KILL_AFTER}s, then the same command at parallelism 2, or 3"
for parallelism in 2 3; do
    run="$DIR/killed-$parallelism"
    job --parallelism 2 --dir "$run" >/dev/null &
    sleep "$KILL_AFTER"
    pids="$(pgrep -f -- "--dir $run" || true)"
    kill -9 $pids 2>/dev/null || true
    wait || true
    # A process's command line empties before its files (the directory lock) are closed.
    for pid in $pids; do while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done; done
    echo "killed after ${KILL_AFTER}s; restored at parallelism $parallelism:"
    job --parallelism "$parallelism" --dir "$run" | tail -1 || { sed "s/\x1b\[[0-9;]*m//g" "$DIR/log" | grep -v "^running" | tail -12; exit 1; }
    cat "$DIR/time"
    report
done
