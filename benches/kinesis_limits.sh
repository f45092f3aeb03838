#!/usr/bin/env bash
# The Kinesis connectors against enforced limits (issue 10's benchmark): the kinesis-limits proxy
# in front of kinesalite, limits scaled down, and
#   1. kinesis_count alone reading a 4-shard stream: read throughput as a fraction of the read
#      limit, GetRecords calls per shard per second;
#   2. two kinesis_count jobs reading the same stream at once (the read budget is shared);
#   3. kinesis_pipe writing into a 2-shard stream: write throughput as a fraction of the limit.
# Usage: benches/kinesis_limits.sh [READ_BYTES_PER_SHARD] [WRITE_RECORDS_PER_SHARD]
# (defaults 65536 and 200). Prints each summary line, the proxy's counts and the fractions.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill-target}"
READ_LIMIT="${1:-65536}"
WRITE_LIMIT="${2:-200}"
RECORD_BYTES=100
IDLE_MS=3000
READ_SHARDS=4
WRITE_SHARDS=2
# About 20 s of reading for one consumer, 30 s of writing.
READ_RECORDS=$((READ_LIMIT * READ_SHARDS * 20 / RECORD_BYTES))
WRITE_RECORDS=$((WRITE_LIMIT * WRITE_SHARDS * 30))

scripts/setup.sh >&2
scripts/emulators.sh start kinesalite >&2
eval "$(scripts/emulators.sh env)"
cargo build --release --workspace --all-features --examples --bins >&2
BIN="$CARGO_TARGET_DIR/release"
DIR="$(mktemp -d)"
PROXIES=()
cleanup() {
    for pid in "${PROXIES[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT

# start_proxy PORT ARGS...: starts kinesis-limits and waits for its listening line.
start_proxy() {
    local port="$1"
    shift
    "$BIN/kinesis-limits" --listen "127.0.0.1:$port" --upstream "$RILL_KINESALITE_ENDPOINT" "$@" \
        >"$DIR/proxy-$port.out" 2>"$DIR/proxy-$port.err" &
    PROXIES+=($!)
    for _ in $(seq 100); do
        grep -q "listening" "$DIR/proxy-$port.out" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "kinesis-limits on port $port did not start" >&2
    cat "$DIR/proxy-$port.err" >&2
    exit 1
}

streams() { "$BIN/examples/kinesis_streams" --endpoint "$RILL_KINESALITE_ENDPOINT" "$@"; }
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

count_job() { # count_job ENDPOINT STREAM DIR
    "$BIN/examples/kinesis_count" --endpoint "$1" --region us-east-1 --stream "$2" --parallelism 2 \
        --dir "$3" --checkpoint-interval-ms 1000 --initial-position TRIM_HORIZON --idle-exit-ms "$IDLE_MS" \
        --read-bytes-per-shard "$READ_LIMIT" 2>"$3.err" | tail -1
}

report_read() { # report_read LABEL SUMMARY
    local bytes elapsed calls reading
    bytes=$(field "$2" bytes)
    elapsed=$(field "$2" elapsed_ms)
    calls=$(field "$2" get_records_calls)
    reading=$((elapsed - IDLE_MS))
    python3 -c "
b, t, c, lim, n = $bytes, $reading / 1000, $calls, $READ_LIMIT, $READ_SHARDS
print(f'$1: {b / t / 1024:.1f} KiB/s over {t:.1f} s = {b / t / (lim * n):.2f} of the read limit '
      f'({n} x {lim / 1024:.0f} KiB/s); GetRecords calls per shard per second {c / t / n:.2f}')"
}

proxy_stats() { # proxy_stats PORT: GetRecords admitted/throttled and the busiest shard-second
    python3 -c "
import json, urllib.request
s = json.load(urllib.request.urlopen('http://127.0.0.1:$1/_limits/stats'))
peak = max((v['max_get_records_calls_in_one_second'] for v in s['shards'].values()), default=0)
print(f\"proxy: GetRecords admitted={s['get_records_admitted']} throttled={s['get_records_throttled']}; \"
      f\"PutRecords entries admitted={s['put_entries_admitted']} throttled={s['put_entries_throttled']}; \"
      f\"most admitted GetRecords calls on one shard in one second={peak}\")"
}

echo "== read limit $READ_LIMIT B/s per shard, $READ_RECORDS records of $RECORD_BYTES B in $READ_SHARDS shards"
start_proxy 4591 --read-bytes-per-shard "$READ_LIMIT"
IN="bench-limits-in-$$"
streams create "$IN" "$READ_SHARDS" >&2
streams fill "$IN" "$READ_RECORDS" --record-bytes "$RECORD_BYTES" >&2

S1=$(count_job http://127.0.0.1:4591 "$IN" "$DIR/alone")
echo "kinesis_count alone: $S1"
report_read "one consumer" "$S1"
proxy_stats 4591

echo "== two kinesis_count jobs on the same stream (fresh proxy budgets and counts)"
start_proxy 4592 --read-bytes-per-shard "$READ_LIMIT"
count_job http://127.0.0.1:4592 "$IN" "$DIR/first" >"$DIR/first.summary" &
A=$!
count_job http://127.0.0.1:4592 "$IN" "$DIR/second" >"$DIR/second.summary" &
B=$!
wait "$A" "$B"
S2=$(cat "$DIR/first.summary")
S3=$(cat "$DIR/second.summary")
echo "first:  $S2"
echo "second: $S3"
report_read "first of two" "$S2"
report_read "second of two" "$S3"
python3 -c "
b = $(field "$S2" bytes) + $(field "$S3" bytes)
t = (max($(field "$S2" elapsed_ms), $(field "$S3" elapsed_ms)) - $IDLE_MS) / 1000
print(f'two consumers together: {b / t / ($READ_LIMIT * $READ_SHARDS):.2f} of the read limit')"
proxy_stats 4592

echo "== write limit $WRITE_LIMIT records/s per shard, $WRITE_RECORDS records into $WRITE_SHARDS shards"
start_proxy 4593 --write-records-per-shard "$WRITE_LIMIT"
SRC="bench-limits-src-$$"
OUT="bench-limits-out-$$"
streams create "$SRC" 2 >&2
streams create "$OUT" "$WRITE_SHARDS" >&2
streams fill "$SRC" "$WRITE_RECORDS" --record-bytes "$RECORD_BYTES" >&2
for mode in default ordering; do
    [ "$mode" = ordering ] && { OUT="$OUT-o"; streams create "$OUT" "$WRITE_SHARDS" >&2; }
    extra=()
    [ "$mode" = ordering ] && extra=(--ordering)
    P=$("$BIN/examples/kinesis_pipe" --endpoint http://127.0.0.1:4593 --region us-east-1 --source-stream "$SRC" \
        --sink-stream "$OUT" --parallelism 2 --dir "$DIR/pipe-$mode" --checkpoint-interval-ms 1000 \
        --idle-exit-ms "$IDLE_MS" "${extra[@]}" 2>"$DIR/pipe-$mode.err" | tail -1)
    echo "kinesis_pipe ($mode): $P"
    python3 -c "
sent, t = $(field "$P" sent), ($(field "$P" elapsed_ms) - $IDLE_MS) / 1000
print(f'sink ($mode): {sent / t:.0f} records/s over {t:.1f} s = {sent / t / ($WRITE_LIMIT * $WRITE_SHARDS):.2f} of the write limit')"
    streams compare "$SRC" "$OUT"
done
proxy_stats 4593
