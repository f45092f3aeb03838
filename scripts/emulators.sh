#!/usr/bin/env bash
# Start/stop the local emulators installed by scripts/setup.sh into .emulators/: the Kinesis
# emulators kinesalite and kinesis-local (npm), and moto's server as the S3 endpoint (PyPI).
#
#   scripts/emulators.sh start  [kinesalite|kinesis-local|moto|all]   (default: all)
#   scripts/emulators.sh stop   [kinesalite|kinesis-local|moto|all]   (default: all)
#   scripts/emulators.sh status [kinesalite|kinesis-local|moto|all]   (exit 3 if one is not answering)
#   scripts/emulators.sh env                                          (prints export lines)
#
# Ports: RILL_KINESALITE_PORT (4567), RILL_KINESIS_LOCAL_PORT (4568),
#        RILL_KINESIS_LOCAL_TLS_PORT (4569; kinesis-local always opens a TLS port too),
#        RILL_MOTO_PORT (4570).
# Readiness timeout for start: RILL_EMULATOR_START_TIMEOUT seconds (60).
# Logs go to .emulators/logs/NAME.log, PID files to .emulators/run/NAME.pid.
# Note: both emulators listen on all interfaces; clients should use http://127.0.0.1:PORT.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EMU_DIR="$ROOT/.emulators"
LOG_DIR="$EMU_DIR/logs"
RUN_DIR="$EMU_DIR/run"
NODE_MODULES="$EMU_DIR/node_modules"

KINESALITE_PORT="${RILL_KINESALITE_PORT:-4567}"
KINESIS_LOCAL_PORT="${RILL_KINESIS_LOCAL_PORT:-4568}"
KINESIS_LOCAL_TLS_PORT="${RILL_KINESIS_LOCAL_TLS_PORT:-4569}"
MOTO_PORT="${RILL_MOTO_PORT:-4570}"
MOTO_BIN="$EMU_DIR/python/bin/moto_server"
START_TIMEOUT="${RILL_EMULATOR_START_TIMEOUT:-60}"
STOP_GRACE_SECONDS=5

# Short state-change delays (CREATING/UPDATING/DELETING...) so tests do not wait 500 ms each.
KINESALITE_STATE_MS=50
KINESIS_LOCAL_STATE_DURATION=50ms
SHARD_LIMIT=1000

ALL_EMULATORS=(kinesalite kinesis-local moto)

log() { echo "emulators: $*" >&2; }
die() { log "error: $*"; exit 1; }

port_of() {
    case "$1" in
        kinesalite) echo "$KINESALITE_PORT" ;;
        kinesis-local) echo "$KINESIS_LOCAL_PORT" ;;
        moto) echo "$MOTO_PORT" ;;
    esac
}
pid_file() { echo "$RUN_DIR/$1.pid"; }
log_file() { echo "$LOG_DIR/$1.log"; }

# Expand the optional NAME argument into the global array TARGETS.
set_targets() {
    case "${1:-all}" in
        all) TARGETS=("${ALL_EMULATORS[@]}") ;;
        kinesalite | kinesis-local | moto) TARGETS=("$1") ;;
        *) die "unknown emulator '$1' (expected kinesalite, kinesis-local, moto or all)" ;;
    esac
}

# Whether the emulator NAME answers on PORT (exit status as probe_kinesis).
probe_as() {
    case "$1" in
        moto) probe_s3 "$2" ;;
        *) probe_kinesis "$2" ;;
    esac
}

# S3 ListBuckets probe (GET /) through node. Exit status: 0 answered 200, 2 connection refused,
# 1 anything else.
probe_s3() {
    node -e '
const req = require("http").request({ host: "127.0.0.1", port: Number(process.argv[1]), method: "GET", path: "/", timeout: 2000 },
  (res) => { res.resume(); res.on("end", () => process.exit(res.statusCode === 200 ? 0 : 1)); });
req.on("timeout", () => req.destroy(new Error("timeout")));
req.on("error", (e) => process.exit(e.code === "ECONNREFUSED" ? 2 : 1));
req.end();
' "$1"
}

# Kinesis ListStreams probe through node (always present; avoids depending on curl).
# Exit status: 0 answered with a stream list, 2 connection refused, 1 anything else.
probe_kinesis() {
    node -e '
const http = require("http");
const req = http.request({
  host: "127.0.0.1", port: Number(process.argv[1]), method: "POST", path: "/", timeout: 2000,
  headers: {
    "X-Amz-Target": "Kinesis_20131202.ListStreams",
    "Content-Type": "application/x-amz-json-1.1",
    // kinesalite rejects unsigned calls (MissingAuthenticationTokenException) and checks that
    // a date header exists, but never verifies the signature itself.
    "Authorization": "AWS4-HMAC-SHA256 Credential=fake/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=fake",
    "X-Amz-Date": new Date().toISOString().replace(/[-:]|\.\d{3}/g, ""),
  },
}, (res) => {
  let body = "";
  res.on("data", (c) => (body += c));
  res.on("end", () => {
    try { process.exit(res.statusCode === 200 && Array.isArray(JSON.parse(body).StreamNames) ? 0 : 1); }
    catch (e) { process.exit(1); }
  });
});
req.on("timeout", () => req.destroy(new Error("timeout")));
req.on("error", (e) => process.exit(e.code === "ECONNREFUSED" ? 2 : 1));
req.end("{}");
' "$1"
}

# True if PID exists and is not a zombie (a crashed child of this very script stays a zombie).
is_alive() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [ "${stat:0:1}" != "Z" ]
}

# Print the numeric PID stored in NAME's PID file, or nothing.
recorded_pid() {
    local pid
    pid="$(cat "$(pid_file "$1")" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]]; then echo "$pid"; fi
}

# Print the PID recorded for NAME if that process is alive and is really that emulator.
running_pid() {
    local pid
    pid="$(recorded_pid "$1")"
    [ -n "$pid" ] || return 1
    is_alive "$pid" || return 1
    # Guard against PID reuse: the command line must mention the emulator's package.
    local mark="node_modules/$1/"
    [ "$1" = moto ] && mark="moto_server"
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$mark" || return 1
    echo "$pid"
}

# Run by setsid: sh writes its own PID (atomically, via rename) then execs the command, so the
# PID file names the node process itself, which leads its own session and process group.
# shellcheck disable=SC2016
SPAWN='echo $$ >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"'

# Launch NAME in the background in its own session, recording its PID.
launch() {
    local name="$1" pf lf
    pf="$(pid_file "$name")"
    lf="$(log_file "$name")"
    mkdir -p "$LOG_DIR" "$RUN_DIR"
    rm -f "$pf" "$pf.tmp"
    case "$name" in
        kinesalite)
            [ -f "$NODE_MODULES/kinesalite/cli.js" ] || die "kinesalite not installed: run scripts/setup.sh"
            (
                cd "$EMU_DIR"
                exec setsid sh -c "$SPAWN" "$pf" \
                    node "$NODE_MODULES/kinesalite/cli.js" \
                    --port "$KINESALITE_PORT" --shardLimit "$SHARD_LIMIT" \
                    --createStreamMs "$KINESALITE_STATE_MS" --deleteStreamMs "$KINESALITE_STATE_MS" \
                    --updateStreamMs "$KINESALITE_STATE_MS"
            ) </dev/null >"$lf" 2>&1 &
            ;;
        kinesis-local)
            [ -f "$NODE_MODULES/kinesis-local/main.js" ] || die "kinesis-local not installed: run scripts/setup.sh"
            (
                cd "$EMU_DIR"
                export KINESIS_MOCK_PLAIN_PORT="$KINESIS_LOCAL_PORT"
                export KINESIS_MOCK_TLS_PORT="$KINESIS_LOCAL_TLS_PORT"
                # Without this it crashes at start, even for plain HTTP.
                export KINESIS_MOCK_CERT_PATH="$NODE_MODULES/kinesis-local/server.json"
                export SHARD_LIMIT
                local v
                for v in CREATE_STREAM_DURATION DELETE_STREAM_DURATION \
                    REGISTER_STREAM_CONSUMER_DURATION DEREGISTER_STREAM_CONSUMER_DURATION \
                    START_STREAM_ENCRYPTION_DURATION STOP_STREAM_ENCRYPTION_DURATION \
                    MERGE_SHARDS_DURATION SPLIT_SHARD_DURATION \
                    UPDATE_SHARD_COUNT_DURATION UPDATE_STREAM_MODE_DURATION; do
                    export "$v=$KINESIS_LOCAL_STATE_DURATION"
                done
                exec setsid sh -c "$SPAWN" "$pf" \
                    node "$NODE_MODULES/kinesis-local/main.js"
            ) </dev/null >"$lf" 2>&1 &
            ;;
        moto)
            [ -x "$MOTO_BIN" ] || die "moto not installed: run scripts/setup.sh"
            (
                cd "$EMU_DIR"
                exec setsid sh -c "$SPAWN" "$pf" "$MOTO_BIN" -H 127.0.0.1 -p "$MOTO_PORT"
            ) </dev/null >"$lf" 2>&1 &
            ;;
    esac
}

show_log_tail() {
    local lf
    lf="$(log_file "$1")"
    if [ -s "$lf" ]; then
        log "last lines of $lf:"
        tail -n 20 "$lf" | sed 's/^/    /' >&2
    else
        log "$lf is empty"
    fi
}

start_one() {
    local name="$1" port pid rc deadline
    port="$(port_of "$name")"
    if pid="$(running_pid "$name")"; then
        if probe_as "$name" "$port"; then
            log "$name already running (pid $pid, port $port)"
            return 0
        fi
        # Alive but not answering (e.g. still starting, or hung): fall through to the wait.
        log "$name running (pid $pid) but not answering yet on port $port; waiting"
    else
        rc=0
        probe_as "$name" "$port" || rc=$?
        if [ "$rc" -eq 0 ]; then
            log "warning: port $port already answers as $name but was not started by this script; leaving it"
            return 0
        elif [ "$rc" -ne 2 ]; then
            die "port $port is in use by something that does not answer as $name"
        fi
        log "starting $name on port $port"
        launch "$name"
    fi
    deadline=$((SECONDS + START_TIMEOUT))
    pid=""
    while :; do
        # The PID file is written just after the fork; once known, the process must stay alive.
        [ -n "$pid" ] || pid="$(recorded_pid "$name")"
        if [ -n "$pid" ] && ! is_alive "$pid"; then
            log "$name (pid $pid) exited during start-up"
            show_log_tail "$name"
            rm -f "$(pid_file "$name")"
            exit 1
        fi
        if probe_as "$name" "$port"; then
            [ -n "$pid" ] || pid="$(recorded_pid "$name")"
            log "$name ready (pid ${pid:-?}, http://127.0.0.1:$port)"
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$name did not answer on port $port within ${START_TIMEOUT}s"
            show_log_tail "$name"
            stop_one "$name"
            exit 1
        fi
        sleep 0.2
    done
}

stop_one() {
    local name="$1" pid i
    if ! pid="$(running_pid "$name")"; then
        log "$name not running"
        rm -f "$(pid_file "$name")"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_GRACE_SECONDS * 10; i++)); do
        is_alive "$pid" || break
        sleep 0.1
    done
    if is_alive "$pid"; then
        log "$name did not exit within ${STOP_GRACE_SECONDS}s after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            is_alive "$pid" || break
            sleep 0.1
        done
        is_alive "$pid" && die "$name (pid $pid) still alive after SIGKILL"
    fi
    rm -f "$(pid_file "$name")"
    log "$name stopped"
}

# One line per emulator on stdout; returns non-zero if any is not running and answering.
status_one() {
    local name="$1" port pid
    port="$(port_of "$name")"
    if pid="$(running_pid "$name")"; then
        if probe_as "$name" "$port"; then
            echo "$name: running, pid $pid, http://127.0.0.1:$port, answering"
        else
            echo "$name: running, pid $pid, http://127.0.0.1:$port, NOT answering"
            return 1
        fi
    else
        echo "$name: stopped"
        return 1
    fi
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
[ $# -le 1 ] || die "too many arguments"
case "$cmd" in
    start)
        command -v node >/dev/null 2>&1 || die "node is required"
        set_targets "${1:-all}"
        for name in "${TARGETS[@]}"; do start_one "$name"; done
        ;;
    stop)
        set_targets "${1:-all}"
        for name in "${TARGETS[@]}"; do stop_one "$name"; done
        ;;
    status)
        set_targets "${1:-all}"
        rc=0
        for name in "${TARGETS[@]}"; do status_one "$name" || rc=3; done
        exit "$rc"
        ;;
    env)
        echo "export RILL_KINESALITE_ENDPOINT=http://127.0.0.1:$KINESALITE_PORT"
        echo "export RILL_KINESIS_LOCAL_ENDPOINT=http://127.0.0.1:$KINESIS_LOCAL_PORT"
        echo "export RILL_S3_ENDPOINT=http://127.0.0.1:$MOTO_PORT"
        ;;
    *)
        echo "usage: $0 {start|stop|status} [kinesalite|kinesis-local|moto|all] | $0 env" >&2
        exit 2
        ;;
esac
