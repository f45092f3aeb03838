#!/usr/bin/env bash
# All keys cached against the hand-written yardstick (issue 11): keyed_count with RECORDS records,
# 100 k uniform keys, parallelism 2, 1 s checkpoints, `--emit none`, and hashmap_loop (two
# threads counting their halves of the same keys in a std HashMap, no rill) on the same records,
# run in turn REPEATS times so both see the same machine. Prints every run, then each side's
# median records/s and the median of the pairwise ratios keyed_count / hashmap_loop.
# Usage: benches/all_cached.sh [RECORDS] [REPEATS] (defaults 20000000 5).
# KEYED_COUNT_BIN=PATH runs another build of keyed_count (e.g. one from an older commit).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill-target}"
RECORDS="${1:-20000000}"
REPEATS="${2:-5}"
cargo build --release --workspace --all-features --examples >&2
BIN="${KEYED_COUNT_BIN:-$CARGO_TARGET_DIR/release/examples/keyed_count}"
LOOP="$CARGO_TARGET_DIR/release/examples/hashmap_loop"
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT

# shellcheck source=benches/common.sh
. benches/common.sh
for i in $(seq "$REPEATS"); do
    rm -rf "$DIR/run"
    rill="$("$BIN" --records "$RECORDS" --keys 100000 --parallelism 2 --checkpoint-interval-ms 1000 \
        --dir "$DIR/run" --emit none)"
    yardstick="$("$LOOP" --records "$RECORDS" --keys 100000 --threads 2)"
    echo "keyed_count: $rill"
    echo "hashmap_loop: $yardstick"
    pair "$DIR/pairs" "$(echo "$rill" | rate)" "$(echo "$yardstick" | rate)"
done
echo "median keyed_count_records_per_sec=$(median <"$DIR/pairs.a") hashmap_loop_records_per_sec=$(median <"$DIR/pairs.b") ratio=$(median <"$DIR/pairs.ratio")"
