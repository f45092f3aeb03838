#!/usr/bin/env bash
# Checkpoints on S3 (moto's server) against local checkpoints, for keyed_count with 1 M keys and
# 1 s checkpoints (issue 13's benchmark). Prints, per run:
#   - the summary line (records/s, checkpoints, uploaded_bytes) and its peak RSS;
#   - state_bytes: the size of the last checkpoint (its local copy);
#   - the restore: the same command again on an empty local directory (S3) or the same one
#     (local), which restores the final checkpoint and has nothing left to read, so its elapsed
#     time is the time to restore that state.
# Usage: benches/s3_checkpoints.sh [RECORDS] [RATE] [REPEATS] (defaults 4000000 200000 2).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill-target}"
RECORDS="${1:-4000000}"
RATE="${2:-200000}"
REPEATS="${3:-2}"
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

make_bucket() {
    "$ROOT/.emulators/python/bin/python" -c 'import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT")).read()' "$RILL_S3_ENDPOINT/$1"
}

last_checkpoint_bytes() {
    local last
    last="$(ls -d "$1"/checkpoints/chk-* | sort | tail -1)"
    du -sb "$last" | cut -f1
}

run() {
    local where="$1" i="$2" location=() machine="$DIR/$1-$2"
    if [ "$where" = s3 ]; then
        make_bucket "bench-$i-$$"
        location=(--checkpoint-location "s3://bench-$i-$$/job")
    fi
    /usr/bin/time -f "peak_rss_kb=%M" -o "$DIR/time" "$BIN" --records "$RECORDS" --keys "$KEYS" --parallelism 2 \
        --checkpoint-interval-ms 1000 --rate "$RATE" --dir "$machine" --emit none "${location[@]}"
    echo "$where run $i: $(cat "$DIR/time") state_bytes=$(last_checkpoint_bytes "$machine")"
    local again="$machine"
    [ "$where" = s3 ] && again="$DIR/$where-$i-elsewhere"
    echo -n "$where restore $i: "
    "$BIN" --records "$RECORDS" --keys "$KEYS" --parallelism 2 --checkpoint-interval-ms 1000 \
        --dir "$again" --emit none "${location[@]}"
    rm -rf "$machine" "$again"
}

for i in $(seq "$REPEATS"); do
    run local "$i"
    run s3 "$i"
done
