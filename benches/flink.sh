#!/usr/bin/env bash
# rill against Apache Flink on the same machine in one series (issue 11's targets), each pair run
# in turn REPEATS times:
#   - keyed_count and Flink's KeyedCount (benches/flink/KeyedCount.java, the same job: numbers
#     0..N-1, key n % 100000, a running count per key in a ValueState, parallelism 2, 1 s
#     checkpoints, discarding sink): all keys cached (rill's default) against Flink's
#     HashMapStateBackend, then 10 % of a subtask's keys cached (--cache-entries 5000) against
#     Flink's EmbeddedRocksDBStateBackend (incremental checkpoints);
#   - window_count and Flink's WindowCount (benches/flink/WindowCount.java): 10 k keys, 1 s
#     tumbling event-time windows, 100 ms out of orderness, exactly-once files, heap state.
# Prints every run, then each side's median records/s and the median of the pairwise ratios.
# Flink's figure is over its job's net runtime (without starting the local cluster); rill's over
# its whole run.
# Set-up: Flink's jars come from PyPI (apache-flink-libraries, PyFlink's copy of Flink's lib/)
# into .bench/flink; javac from Debian's openjdk-17-jdk-headless if missing.
# Usage: benches/flink.sh [RECORDS] [REPEATS] (defaults 20000000 3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill-target}"
RECORDS="${1:-20000000}"
REPEATS="${2:-3}"

# shellcheck source=benches/common.sh
. benches/common.sh
ensure_flink flink.sh
javac -nowarn -cp "$FLINK/lib/*" -d "$FLINK/classes" benches/flink/ByKey.java benches/flink/KeyedCount.java benches/flink/WindowCount.java
cargo build --release --workspace --all-features --examples >&2
BIN="${KEYED_COUNT_BIN:-$CARGO_TARGET_DIR/release/examples/keyed_count}"
WINDOW_BIN="$CARGO_TARGET_DIR/release/examples/window_count"
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT

# compare NAME "FLINK ARGS" RILL COMMAND...: the pair in turn, REPEATS times. {dir} in either
# stands for an empty directory of the run.
compare() {
    local name="$1" flink_args="$2"
    shift 2
    for i in $(seq "$REPEATS"); do
        rm -rf "$DIR/run" && mkdir -p "$DIR/run"
        rill="$("${@//\{dir\}/$DIR/run}")"
        rm -rf "$DIR/run" && mkdir -p "$DIR/run"
        # shellcheck disable=SC2086 # the Flink job's arguments are words
        flink="$(java -cp "$FLINK/lib/*:$FLINK/classes" ${flink_args//\{dir\}/$DIR/run} 2>/dev/null |
            grep records_per_sec)"
        echo "$name rill: $rill"
        echo "$name flink: $flink"
        pair "$DIR/$name" "$(echo "$rill" | rate)" "$(echo "$flink" | rate)"
    done
    echo "median $name rill_records_per_sec=$(median <"$DIR/$name.a") flink_records_per_sec=$(median <"$DIR/$name.b") ratio=$(median <"$DIR/$name.ratio")"
}
KEYED=(--records "$RECORDS" --keys 100000 --parallelism 2 --checkpoint-interval-ms 1000 --dir "{dir}" --emit none)
compare all_cached_vs_heap "KeyedCount $RECORDS 100000 2 hashmap 1000 {dir}" "$BIN" "${KEYED[@]}"
compare spilling_vs_rocksdb "KeyedCount $RECORDS 100000 2 rocksdb 1000 {dir}" "$BIN" "${KEYED[@]}" --cache-entries 5000
compare windows_vs_heap "WindowCount $RECORDS 10000 2 1000 100 1000 {dir}" "$WINDOW_BIN" --records "$RECORDS" \
    --keys 10000 --parallelism 2 --window-ms 1000 --out-of-orderness-ms 100 --checkpoint-interval-ms 1000 --dir "{dir}"
