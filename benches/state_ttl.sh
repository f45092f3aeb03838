#!/usr/bin/env bash
# Keyed state with a time to live in a long run (issue 27): the `dedup` example over RECORDS
# records, each key coming 4 times in a row and never again, at RATE records/s, parallelism 2,
# 1 s checkpoints; once with a time to live of TTL_MS and once without. Every 5 s it prints the
# size on disk of the working RocksDB databases (DIR/checkpoints/work) and of the latest checkpoint, so the
# two runs' growth can be compared: with the time to live, expired rows are dropped by compaction.
# Usage: benches/state_ttl.sh [RECORDS] [RATE] [TTL_MS] (defaults 60000000 500000 2000).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill-target}"
RECORDS="${1:-60000000}"
RATE="${2:-500000}"
TTL_MS="${3:-2000}"
cargo build --release --all-features --example dedup >&2
BIN="$CARGO_TARGET_DIR/release/examples/dedup"
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT

# sampled NAME ARGS...: runs dedup in an empty directory, printing the sizes every 5 s.
sampled() {
    local name="$1"
    shift
    rm -rf "$DIR/run"
    "$BIN" --records "$RECORDS" --rate "$RATE" --parallelism 2 --checkpoint-interval-ms 1000 --dir "$DIR/run" "$@" \
        >"$DIR/summary" 2>/dev/null &
    local pid=$! start=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        sleep 5
        local work checkpoint
        work="$(du -sk "$DIR/run/checkpoints/work" 2>/dev/null | cut -f1)"
        # shellcheck disable=SC2012 # checkpoint directories have plain names
        checkpoint="$(ls -d "$DIR"/run/checkpoints/chk-* 2>/dev/null | tail -1)"
        checkpoint="$( [ -n "$checkpoint" ] && du -skL "$checkpoint" | cut -f1 || echo 0)"
        echo "$name t=$((SECONDS - start))s working_state_kb=${work:-0} latest_checkpoint_kb=$checkpoint"
    done
    wait "$pid"
    echo "$name: $(cat "$DIR/summary")"
}
sampled "ttl_${TTL_MS}ms" --ttl-ms "$TTL_MS"
sampled "no_ttl"
