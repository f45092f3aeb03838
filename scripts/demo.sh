#!/usr/bin/env bash
# The demo, part 1: a keyed running count over 3,000,000 generated records at parallelism 2 with 500 ms
# checkpoints, killed with SIGKILL twice mid-run, resumed each time with the same command (the
# second time at parallelism 3), then checked: every key's committed counts are 1..n, each once.
# Part 2 (below): the same with the Kinesis source, reading a 4-shard stream on kinesalite,
# which the script starts itself.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill-target}"
scripts/setup.sh demo

echo "== building (the first build compiles RocksDB: several minutes)" >&2
# Every binary of the demo in one workspace-level invocation, with the features the tests use, so
# that RocksDB and the AWS SDK are compiled once and shared with scripts/test.sh and .ci/run.
cargo build --release --workspace --all-features --example keyed_count --example kinesis_count --example kinesis_streams
BIN="$CARGO_TARGET_DIR/release/examples/keyed_count"
DIR="${DEMO_DIR:-$ROOT/demo-out/keyed-count}"
RECORDS=3000000
KEYS=1000
rm -rf "$DIR"

run() { # parallelism, then extra args (exec: so that $! is the job process itself)
    local p=$1; shift
    exec "$BIN" --records $RECORDS --keys $KEYS --parallelism "$p" --checkpoint-interval-ms 500 --dir "$DIR" "$@"
}

for round in 1 2; do
    echo "== run $round: parallelism 2, 1M records/s; SIGKILL after 1.2 s" >&2
    run 2 --rate 1000000 & pid=$!
    sleep 1.2
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "   killed; complete checkpoints: $(ls "$DIR/checkpoints" | grep -c chk- || true), committed files: $(ls "$DIR/output" | grep -c '^part-' || true)" >&2
done

echo "== run 3: same command at parallelism 3, to the end" >&2
(run 3)

echo "== checking $DIR/output: each key must have counts 1..n exactly once" >&2
cat "$DIR"/output/part-* | sort -t$'\t' -k1,1n -k2,2n | awk -F'\t' -v keys=$KEYS -v records=$RECORDS '
    BEGIN { prev = -1 }
    { if ($1 != prev) { want = 1; prev = $1; seen++ } if ($2 != want) bad++; want++ }
    END {
        printf "lines=%d keys=%d out-of-sequence=%d\n", NR, seen, bad + 0
        if (NR != records || seen != keys || bad > 0) { print "EXACTLY-ONCE CHECK FAILED"; exit 1 }
        print "exactly-once: OK"
    }'

# ---------------------------------------------------------------------------------------------
# Part 2: the same crash-and-recover cycle reading Amazon Kinesis (the kinesalite emulator).
COUNT="$CARGO_TARGET_DIR/release/examples/kinesis_count"
TOOL="$CARGO_TARGET_DIR/release/examples/kinesis_streams"
# Stop kinesalite at the end only if this script started it.
if ! (scripts/emulators.sh status 2>/dev/null || true) | grep -q "^kinesalite: running"; then
    trap 'scripts/emulators.sh stop kinesalite' EXIT
fi
scripts/emulators.sh start kinesalite
eval "$(scripts/emulators.sh env)"
ENDPOINT="$RILL_KINESALITE_ENDPOINT"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo
STREAM="demo-$(date +%s)"
KRECORDS=50000
KDIR="${DEMO_DIR:-$ROOT/demo-out}/kinesis-count"
rm -rf "$KDIR"
echo "== Kinesis: stream $STREAM with 4 shards, $KRECORDS records (partition keys key-0..key-96)" >&2
"$TOOL" --endpoint "$ENDPOINT" create "$STREAM" 4
"$TOOL" --endpoint "$ENDPOINT" fill "$STREAM" "$KRECORDS"

kcount() { # parallelism
    exec "$COUNT" --endpoint "$ENDPOINT" --region us-east-1 --stream "$STREAM" --parallelism "$1" --dir "$KDIR" \
        --checkpoint-interval-ms 200 --initial-position TRIM_HORIZON --idle-exit-ms 2000
}
echo "== Kinesis run 1: parallelism 2; SIGKILL once about a fifth of the records are committed" >&2
kcount 2 & pid=$!
for _ in $(seq 300); do
    [ "$(cat "$KDIR"/output/part-* 2>/dev/null | wc -l)" -ge $((KRECORDS / 5)) ] && break
    sleep 0.05
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
echo "   killed; committed lines so far: $(cat "$KDIR"/output/part-* 2>/dev/null | wc -l)" >&2
echo "== Kinesis run 2: same command at parallelism 3, until the stream is idle for 2 s" >&2
(kcount 3)

echo "== checking $KDIR/output: each partition key must have counts 1..n exactly once" >&2
cat "$KDIR"/output/part-* | sort -t$'\t' -k1,1 -k2,2n | awk -F'\t' -v records=$KRECORDS '
    BEGIN { prev = "" }
    { if ($1 != prev) { want = 1; prev = $1; seen++ } if ($2 != want) bad++; want++ }
    END {
        printf "lines=%d keys=%d out-of-sequence=%d\n", NR, seen, bad + 0
        if (NR != records || bad > 0) { print "EXACTLY-ONCE CHECK FAILED"; exit 1 }
        print "exactly-once: OK"
    }'
