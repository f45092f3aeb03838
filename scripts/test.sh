#!/usr/bin/env bash
# The test command: set-up (libclang-dev, emulators), start both Kinesis emulators, run every
# test of the workspace in release mode (RocksDB is built once, in release, and reused), stop the
# emulators. Extra arguments go to `cargo test`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# A persistent target dir: the first RocksDB build takes minutes, later runs reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rill-target}"

scripts/setup.sh all
scripts/emulators.sh start all
trap 'scripts/emulators.sh stop all' EXIT
eval "$(scripts/emulators.sh env)"

cargo test --release --workspace --all-features "$@"
