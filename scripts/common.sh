# Helpers shared by scripts/loadtest.sh, scripts/ab.sh and
# scripts/callgrind.sh (sourced, not run). The sourcing script sets ROOT and
# PIDS=() first.

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# stop_all [PID...]: stops these and every process in PIDS, and waits for them.
stop_all() {
    local pid
    for pid in "$@" ${PIDS[@]+"${PIDS[@]}"}; do kill "$pid" 2>/dev/null || true; done
    for pid in "$@" ${PIDS[@]+"${PIDS[@]}"}; do wait "$pid" 2>/dev/null || true; done
}

# need TOOL...: dies naming the first tool that is not installed.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is not installed"
    done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Below the usual ephemeral range (32768-60999), so that no client socket of
# wrk or curl holds the port.
free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$(( 10000 + RANDOM % 20000 ))
        port_in_use "$port" || { echo "$port"; return 0; }
    done
    die "no free port found"
}

# wait_for_http URL [HEADER]: until URL answers 2xx (with HEADER sent), for
# up to 60 s (a server under valgrind starts slowly).
wait_for_http() {
    local deadline=$((SECONDS + 60))
    until curl -fsS -o /dev/null ${2:+-H "$2"} "$1" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || die "no answer from $1"
        sleep 0.1
    done
}

# build_examples NAME...: builds these release examples (unless SKIP_BUILD is
# set) with the features in FEATURES (default remote-keys, for the remote
# issuer rows; empty: the default features only) and sets EXAMPLES to the
# folder they are in. The release profile is Cargo.toml's (thin LTO, one
# codegen unit), the same for the quickstart and the baseline.
build_examples() {
    local args=() name
    for name in "$@"; do args+=(--example "$name"); done
    FEATURES=${FEATURES-remote-keys}
    [ -z "$FEATURES" ] || args+=(--features "$FEATURES")
    cd "$ROOT"
    if [ -z "${SKIP_BUILD:-}" ]; then
        log "building release examples..."
        cargo build --release "${args[@]}" >&2
    fi
    local target_dir
    target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
        | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    EXAMPLES="${target_dir:-$ROOT/target}/release/examples"
    for name in "$@"; do
        [ -x "$EXAMPLES/$name" ] || die "release example $name not found in $EXAMPLES"
    done
}

# start_redis [ARG...]: a private redis-server (no persistence; more
# redis-server arguments may follow) on a free loopback port, pinned like the
# load generator when CLIENT_PIN is set, its output to REDIS_LOG (default
# none); sets REDIS_PORT and REDIS_URL.
start_redis() {
    REDIS_PORT=$(free_port)
    ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
        --save '' --appendonly no "$@" >"${REDIS_LOG:-/dev/null}" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do
        redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break
        sleep 0.1
    done
    redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 || die "redis-server did not start"
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
}
