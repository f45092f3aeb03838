#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine that already has Rust and Node. What it installs
# depends on what is about to run (the first argument):
#   demo  (scripts/demo.sh): libclang-dev (bindgen, needed by the rocksdb crate) and kinesalite
#   all   (scripts/test.sh, .ci/run; the default): also chromium (headless, for the dashboard's
#         browser test), kinesis-local, and moto's server (the S3 endpoint of the object-store
#         tests) from PyPI into .emulators/python
# Emulators go into .emulators/ from npm. Safe to re-run: every step is skipped when already
# satisfied. Works from any cwd.
set -euo pipefail

WHAT="${1:-all}"
case "$WHAT" in
    demo | all) ;;
    *) echo "usage: scripts/setup.sh [demo|all]" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EMU_DIR="$ROOT/.emulators"
KINESALITE_VERSION="3.3.3"
KINESIS_LOCAL_VERSION="0.6.2"
MOTO_VERSION="5.2.5"

log() { echo "setup: $*" >&2; }

# Run a command as root: directly if we are root, else through sudo if available.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root to run: $* (not root and no sudo)"
        return 1
    fi
}

# Install missing Debian packages, running apt-get update at most once.
APT_UPDATED=0
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "apt packages already installed: $*"
        return 0
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update
        APT_UPDATED=1
    fi
    log "apt-get install -y ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}

# Print the installed version of an npm package under .emulators/, or nothing.
npm_installed_version() {
    local pj="$EMU_DIR/node_modules/$1/package.json"
    [ -f "$pj" ] || return 0
    node -e 'process.stdout.write(String(require(process.argv[1]).version || ""))' "$pj"
}

command -v node >/dev/null 2>&1 || { log "node is required but not found"; exit 1; }
command -v npm >/dev/null 2>&1 || { log "npm is required but not found"; exit 1; }

# (a) libclang-dev (bindgen, for RocksDB) and, for the tests, chromium (the dashboard's browser test)
if [ "$WHAT" = all ]; then
    apt_install libclang-dev chromium
else
    apt_install libclang-dev
fi

# (b) Kinesis emulators, pinned versions, only those not already present.
mkdir -p "$EMU_DIR"
want=()
emulators=("kinesalite@$KINESALITE_VERSION")
[ "$WHAT" = all ] && emulators+=("kinesis-local@$KINESIS_LOCAL_VERSION")
for spec in "${emulators[@]}"; do
    name="${spec%@*}"
    version="${spec##*@}"
    have="$(npm_installed_version "$name")"
    if [ "$have" = "$version" ]; then
        log "$name $version already installed"
    else
        log "$name: have '${have:-none}', want $version"
        want+=("$spec")
    fi
done
if [ "${#want[@]}" -gt 0 ]; then
    # A package.json in .emulators/ keeps npm from walking up to another project's root
    # and records both pins so that one install never removes the other.
    if [ ! -f "$EMU_DIR/package.json" ]; then
        echo '{"name":"rill-emulators","private":true}' >"$EMU_DIR/package.json"
    fi
    log "npm install ${want[*]} into .emulators/"
    npm install --prefix "$EMU_DIR" --no-audit --no-fund --save-exact --loglevel=error "${want[@]}" >&2
fi
# (c) for the tests: moto's server, pinned, in a virtual environment of the project's own.
if [ "$WHAT" != all ]; then
    log "done ($WHAT)"
    exit 0
fi
MOTO_PY="$EMU_DIR/python"
have_moto="$("$MOTO_PY/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true)"
if [ "$have_moto" = "$MOTO_VERSION" ] && [ -x "$MOTO_PY/bin/moto_server" ]; then
    log "moto $MOTO_VERSION already installed"
else
    command -v python3 >/dev/null 2>&1 || { log "python3 is required but not found"; exit 1; }
    [ -x "$MOTO_PY/bin/python" ] || python3 -m venv "$MOTO_PY" || {
        apt_install python3-venv
        python3 -m venv "$MOTO_PY"
    }
    log "pip install moto[server]==$MOTO_VERSION into .emulators/python"
    "$MOTO_PY/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
fi
log "done"
