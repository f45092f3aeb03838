#!/usr/bin/env bash
# Soak (issue 9): for MINUTES each, the keyed count and the window count with output run with a
# task failure injected about every 5 s (a panic in an operator at a random record, handled by
# the restart strategy in-process) and a SIGKILL of the process about every 30 s at a random
# moment (restarted by this script with the same command). At the end the committed output is
# verified against the truth (`--verify` of each example): exactly once.
# Usage: benches/soak.sh MINUTES [RATE]   (not in CI; RATE records/s per job, default 20000)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill-target}"
MINUTES="${1:?usage: benches/soak.sh MINUTES [RATE]}"
RATE="${2:-20000}"
cargo build --release --workspace --all-features --example keyed_count --example window_count >&2
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# Private copies: a rebuild during the soak must not swap the binaries under it.
BIN="$WORK/bin"
mkdir -p "$BIN"
cp "$CARGO_TARGET_DIR/release/examples/keyed_count" "$CARGO_TARGET_DIR/release/examples/window_count" "$BIN/"
RECORDS=$((RATE * 60 * MINUTES))
RESTART="exponential-delay:200:5000:20000"

soak() { # name, then the job's arguments
    local name=$1; shift
    local dir="$WORK/$name" kills=0 failures=0 runs=0 start=$SECONDS line=""
    mkdir -p "$dir"
    while :; do
        runs=$((runs + 1))
        "$BIN/$name" "$@" --dir "$dir" --rate "$RATE" --inject-failure-every-ms 5000 \
            --restart-strategy "$RESTART" >"$dir/stdout" 2>"$dir/stderr" & pid=$!
        # A kill about every 30 s (15 to 45 s), unless the job finishes first.
        local deadline=$((SECONDS + 15 + RANDOM % 31))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            kills=$((kills + 1))
            failures=$((failures + $(grep -c "restarting from the latest complete checkpoint" "$dir/stderr" || true)))
            continue
        fi
        wait "$pid" || { echo "$name: run $runs failed:"; tail -5 "$dir/stderr"; exit 1; }
        line="$(tail -1 "$dir/stdout")"
        failures=$((failures + $(sed -n 's/.* restarts=\([0-9]*\).*/\1/p' <<<"$line")))
        break
    done
    local verified
    verified="$("$BIN/$name" "$@" --dir "$dir" --verify)"
    echo "$name: minutes=$(( (SECONDS - start) / 60 )) records=$RECORDS runs=$runs kills_survived=$kills" \
        "failures_survived=$failures $verified"
}

soak keyed_count --records "$RECORDS" --keys 1000 --parallelism 2 --checkpoint-interval-ms 1000 &
k=$!
soak window_count --records "$RECORDS" --keys 1000 --parallelism 2 --checkpoint-interval-ms 1000 \
    --window-ms 1000 --out-of-orderness-ms 100 --running-counts &
w=$!
wait $k
wait $w
