#!/usr/bin/env bash
# Throughput and peak RSS of the window_count example (issue 5's benchmark).
# Usage: benches/window_count.sh [RECORDS] [REPEATS]. Runs the benchmark command REPEATS times and
# prints every summary line with its peak RSS and CPU time (GNU time). WINDOW_COUNT_BIN=PATH runs
# another build of the example (e.g. one from an older commit) instead of building this one.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill-target}"
RECORDS="${1:-20000000}"
REPEATS="${2:-3}"
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
BIN="${WINDOW_COUNT_BIN:-$CARGO_TARGET_DIR/release/examples/window_count}"
[ -n "${WINDOW_COUNT_BIN:-}" ] || cargo build --release --workspace --all-features --example window_count >&2
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT
for i in $(seq "$REPEATS"); do
    rm -rf "$DIR/run"
    /usr/bin/time -f "peak_rss_kb=%M user_s=%U sys_s=%S" -o "$DIR/time" "$BIN" --records "$RECORDS" --keys 10000 \
        --parallelism 2 --window-ms 1000 --out-of-orderness-ms 100 --checkpoint-interval-ms 1000 --dir "$DIR/run"
    cat "$DIR/time"
done
