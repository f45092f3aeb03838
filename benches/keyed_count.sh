#!/usr/bin/env bash
# Throughput, peak RSS and checkpoint overhead of the keyed_count example (issue 2's benchmark).
# Usage: benches/keyed_count.sh [RECORDS] [REPEATS] [EXTRA ARGS...]. Runs each configuration
# REPEATS times and prints every summary line with its peak RSS (GNU time). KEYED_COUNT_BIN=PATH
# runs another build of the example (e.g. one from an older commit) instead of building this one.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill-target}"
RECORDS="${1:-20000000}"
REPEATS="${2:-3}"
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
BIN="${KEYED_COUNT_BIN:-$CARGO_TARGET_DIR/release/examples/keyed_count}"
[ -n "${KEYED_COUNT_BIN:-}" ] || cargo build --release --workspace --all-features --example keyed_count >&2
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT
for interval in 1000 0; do
    for i in $(seq "$REPEATS"); do
        rm -rf "$DIR/run"
        /usr/bin/time -f "peak_rss_kb=%M" -o "$DIR/time" "$BIN" --records "$RECORDS" --keys 100000 --parallelism 2 \
            --checkpoint-interval-ms "$interval" --dir "$DIR/run" --emit none "${@:3}"
        cat "$DIR/time"
    done
done
