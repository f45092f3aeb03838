#!/usr/bin/env bash
# Checkpoints on S3 (moto's server) against local checkpoints, for keyed_count with 1 M keys and
# 1 s checkpoints (issue 13's benchmark). Two parts:
#   1. incremental uploads and restore: RATE records/s (so each checkpoint changes a part of the
#      state), each checkpoint's size and uploaded bytes (from the coordinator's log), then the same
#      command on an empty local directory (S3) or the same one (local): it restores the final
#      checkpoint and has nothing left to read, so its elapsed time is the restore time;
#   2. throughput cost: THROUGHPUT_RECORDS records unthrottled, local and S3 interleaved, with the
#      peak RSS of each run.
# Usage: benches/s3_checkpoints.sh [RECORDS] [RATE] [REPEATS] [THROUGHPUT_RECORDS]
#        (defaults 4000000 200000 3 20000000).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill-target}"
RECORDS="${1:-4000000}"
RATE="${2:-200000}"
REPEATS="${3:-3}"
THROUGHPUT_RECORDS="${4:-20000000}"
KEYS=1000000
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
scripts/setup.sh
cargo build --release --workspace --all-features --examples >&2
BIN="$CARGO_TARGET_DIR/release/examples/keyed_count"
scripts/emulators.sh start moto
eval "$(scripts/emulators.sh env)"
export AWS_ENDPOINT_URL_S3="$RILL_S3_ENDPOINT" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT

# A new bucket; prints the --checkpoint-location of a job in it.
s3_location() {
    local bucket="bench-$1-$$"
    "$ROOT/.emulators/python/bin/python" -c 'import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT")).read()' "$RILL_S3_ENDPOINT/$bucket"
    echo "s3://$bucket/job"
}

# keyed_count with the arguments given; summary line on stdout, per-checkpoint lines indented.
job() {
    RUST_LOG=rill_runtime::coordinator=info "$BIN" --keys "$KEYS" --parallelism 2 --checkpoint-interval-ms 1000 \
        --emit none "$@" 2>"$DIR/log"
    sed 's/\x1b\[[0-9;]*m//g' "$DIR/log" | grep "checkpoint complete" | sed 's/^.*complete //; s/^/    /' || true
}

echo "## 1. incremental uploads and restore: $RECORDS records at $RATE/s"
for where in local s3; do
    machine="$DIR/$where"
    location=()
    [ "$where" = s3 ] && location=(--checkpoint-location "$(s3_location inc)")
    echo "$where run:"
    job --records "$RECORDS" --rate "$RATE" --dir "$machine" "${location[@]}"
    again="$machine"
    [ "$where" = s3 ] && again="$DIR/elsewhere"
    echo "$where restore (on $([ "$where" = s3 ] && echo 'an empty directory' || echo 'the same directory')):"
    job --records "$RECORDS" --dir "$again" "${location[@]}"
    rm -rf "$machine" "$again"
done

echo "## 2. throughput: $THROUGHPUT_RECORDS records unthrottled"
for i in $(seq "$REPEATS"); do
    for where in local s3; do
        location=()
        [ "$where" = s3 ] && location=(--checkpoint-location "$(s3_location "tp$i")")
        /usr/bin/time -f "peak_rss_kb=%M" -o "$DIR/time" \
            "$BIN" --records "$THROUGHPUT_RECORDS" --keys "$KEYS" --parallelism 2 --checkpoint-interval-ms 1000 \
            --emit none --dir "$DIR/tp" "${location[@]}" 2>/dev/null
        echo "  ^ $where run $i: $(cat "$DIR/time")"
        rm -rf "$DIR/tp"
    done
done
