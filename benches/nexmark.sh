#!/usr/bin/env bash
# The Nexmark queries (issue 27's benchmark): rill's `nexmark` example against Apache Flink 2.3
# running the official SQL (benches/flink/NexmarkSql.java), same machine, same run.
#
# For each query, REPEATS rounds, each in turn:
#   - rill on EVENTS generated events (`--events`, the nexmark crate's generator in process),
#     writing its rows through the exactly-once file sink (the issue's command);
#   - rill on a JSON-lines file of EVENTS events written by the nexmark crate's own binary, split
#     round-robin by line into one file per source subtask (so each stays in event-time order),
#     its rows discarded (`--discard`), as the official Flink setup's `blackhole` sinks do;
#   - Flink on the same files (filesystem source, json format, the official DDL's watermark), into
#     the official `blackhole` sinks.
# All at parallelism 2 with 1 s checkpoints. Each run prints its summary line with its peak RSS
# (GNU time); then per query the medians of events/s and peak RSS, and the median of the
# pairwise ratios rill (file, discarded) / Flink. Flink's events/s is over its job's net runtime (without
# starting the local cluster); rill's over its whole run.
# Set-up as benches/flink.sh (Flink's jars from PyPI into .bench/flink, javac from Debian); the
# generator binary with `cargo install nexmark --features bin` into .bench/nexmark.
# Usage: benches/nexmark.sh [EVENTS] [REPEATS] [QUERIES...] (defaults 10000000 3, all queries).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill-target}"
EVENTS="${1:-10000000}"
REPEATS="${2:-3}"
shift $(($# < 2 ? $# : 2))
QUERIES=("$@")
[ ${#QUERIES[@]} -gt 0 ] || QUERIES=(q0 q1 q2 q3 q4 q5 q7 q8 q9)
GENERATOR="$ROOT/.bench/nexmark/bin/nexmark"

# shellcheck source=benches/common.sh
. benches/common.sh
ensure_flink nexmark.sh
if [ ! -x "$GENERATOR" ]; then
    echo "nexmark.sh: cargo install nexmark 0.2.0 (feature bin) into .bench/nexmark" >&2
    CARGO_TARGET_DIR="$ROOT/.bench/nexmark-target" cargo install --quiet nexmark --version 0.2.0 --features bin \
        --root "$ROOT/.bench/nexmark" >&2
fi
javac -nowarn -cp "$FLINK/lib/*" -d "$FLINK/classes" benches/flink/NexmarkSql.java
cargo build --release --all-features --example nexmark >&2
BIN="${NEXMARK_BIN:-$CARGO_TARGET_DIR/release/examples/nexmark}"
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT

echo "nexmark.sh: writing $EVENTS events as JSON lines" >&2
mkdir -p "$DIR/input"
"$GENERATOR" --no-wait -n "$EVENTS" |
    awk -v dir="$DIR/input" '{ print > (dir "/part-" (NR - 1) % 2 ".jsonl") }'
FILES=(--input "$DIR/input/part-0.jsonl" --input "$DIR/input/part-1.jsonl")

events_per_sec() { sed -n 's/.*events_per_sec=\([0-9]*\).*/\1/p'; }
peak_rss() { sed -n 's/.*peak_rss_kb=\([0-9]*\).*/\1/p'; }

# timed NAME COMMAND...: runs the command in an empty directory {dir}, prints its summary line
# with peak_rss_kb, and records events/s and RSS under $DIR/NAME.
timed() {
    local name="$1"
    shift
    rm -rf "$DIR/run" && mkdir -p "$DIR/run"
    local line
    line="$(/usr/bin/time -f "peak_rss_kb=%M" -o "$DIR/time" "${@//\{dir\}/$DIR/run}" 2>/dev/null | tail -1)"
    line="$line $(cat "$DIR/time")"
    echo "$name: $line"
    echo "$line" | events_per_sec >>"$DIR/$name.rate"
    echo "$line" | peak_rss >>"$DIR/$name.rss"
}

JOB=(--parallelism 2 --checkpoint-interval-ms 1000 --dir "{dir}")
for query in "${QUERIES[@]}"; do
    for _ in $(seq "$REPEATS"); do
        timed "$query-rill-generated" "$BIN" --query "$query" --events "$EVENTS" "${JOB[@]}"
        timed "$query-rill-file" "$BIN" --query "$query" "${FILES[@]}" "${JOB[@]}" --discard
        timed "$query-flink" java -Xmx4g -cp "$FLINK/lib/*:$FLINK/classes" NexmarkSql "$query" "$DIR/input" 2 1000 "{dir}"
        pair "$DIR/$query" "$(tail -1 "$DIR/$query-rill-file.rate")" "$(tail -1 "$DIR/$query-flink.rate")"
    done
    echo "median $query events=$EVENTS" \
        "rill_generated_events_per_sec=$(median <"$DIR/$query-rill-generated.rate")" \
        "rill_file_events_per_sec=$(median <"$DIR/$query-rill-file.rate")" \
        "flink_events_per_sec=$(median <"$DIR/$query-flink.rate")" \
        "ratio_file_vs_flink=$(median <"$DIR/$query.ratio")" \
        "rill_generated_rss_kb=$(median <"$DIR/$query-rill-generated.rss")" \
        "rill_file_rss_kb=$(median <"$DIR/$query-rill-file.rss")" \
        "flink_rss_kb=$(median <"$DIR/$query-flink.rss")"
done
