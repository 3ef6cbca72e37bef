#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind on the running
# servers (the quickstart also with METRICS=0: what the metrics cost): the
# same comparison as scripts/loadtest.sh, but deterministic
# (repeatable to within a fraction of a percent whatever else the machine
# does), for the user-space side of the server. Prints one markdown table.
#
#   scripts/callgrind.sh                 # DURATION=8s CONNECTIONS=16
#
# Environment: DURATION (8s), WARMUP (3s), CONNECTIONS (16), SKIP_BUILD
# (unset), KEEP_LOGS (unset: the callgrind files are deleted at the end).
#
# valgrind hides SHA-NI from the program, so each server's SHA-256 runs
# another code path there than on the CPU (our `sha2`: its portable code;
# jsonwebtoken's aws-lc: its AVX code). The table therefore also shows the
# count without the SHA-256 block functions: that column is the like-for-like
# one (on a CPU with SHA-NI, the HMAC of a token costs both about 0.3 µs).
#
# Needs: cargo, curl, redis-server, redis-cli, wrk, valgrind (callgrind,
# callgrind_control, callgrind_annotate). Kernel time (sockets) is not
# counted: it is the same for both servers (same syscalls per request).

set -euo pipefail

DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-16}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tower-jwt-auth-callgrind.XXXXXX")
PIDS=()
# shellcheck source=scripts/common.sh
. "$ROOT/scripts/common.sh"

cleanup() {
    stop_all
    if [ -n "${KEEP_LOGS:-}" ]; then log "files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need cargo curl redis-server redis-cli wrk valgrind callgrind_control callgrind_annotate

build_examples quickstart baseline_handwritten

REDIS_LOG="$WORK/redis.log" start_redis

# One token with a session, from a quickstart on the private Redis.
ADDR="127.0.0.1:$(free_port)"
env QUICKSTART_ADDR="$ADDR" REDIS_URL="$REDIS_URL" ACCESS_TTL_SECS=3600 RUST_LOG=warn \
    "$EXAMPLES/quickstart" >"$WORK/login.log" 2>&1 &
LOGIN_PID=$!
PIDS+=("$LOGIN_PID")
wait_for_http "http://$ADDR/health"
TOKEN=$(curl -fsS -X POST "http://$ADDR/login" -H 'content-type: application/json' \
    -d '{"username":"alice","password":"alice-pw","device":"callgrind"}' \
    | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || die "login failed"
kill "$LOGIN_PID"; wait "$LOGIN_PID" 2>/dev/null || true

# measure NAME BINARY ENV...: prints "requests total without_sha" for GET /me.
measure() {
    local name=$1 bin=$2; shift 2
    local addr="127.0.0.1:$(free_port)" pid out
    env QUICKSTART_ADDR="$addr" BASELINE_ADDR="$addr" ACCESS_TTL_SECS=3600 RUST_LOG=warn "$@" \
        valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$WORK/$name.%p" "$bin" >"$WORK/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_for_http "http://$addr/me" "authorization: Bearer $TOKEN"
    wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" -H "authorization: Bearer $TOKEN" "http://$addr/me" >/dev/null
    callgrind_control -i on "$pid" >/dev/null
    callgrind_control -z "$pid" >/dev/null
    local requests
    requests=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "authorization: Bearer $TOKEN" \
        "http://$addr/me" | awk '/requests in/ { print $1 }')
    callgrind_control -d "$pid" >/dev/null
    kill "$pid"; wait "$pid" 2>/dev/null || true
    out=$(ls "$WORK/$name.$pid".*1 2>/dev/null | head -1)
    [ -n "$out" ] && [ -n "$requests" ] || die "no profile for $name"
    callgrind_annotate --inclusive=no --threshold=100 "$out" >"$WORK/$name.txt" 2>/dev/null
    awk -v r="$requests" '
        /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
        /sha256::compress256|sha256_block_data_order/ { gsub(",", "", $1); sha += $1 }
        END { printf "%d %.0f %.0f\n", r, total / r, (total - sha) / r }' "$WORK/$name.txt"
}

declare -A TOTAL BARE
row() { # key name binary env...
    local key=$1 label=$2; shift 2
    log "[$key] $label under callgrind..."
    read -r requests total bare < <(measure "$key" "$@")
    TOTAL[$key]=$total
    BARE[$key]=$bare
    printf '| %s | %d | %.1f k | %.1f k |\n' "$label" "$requests" \
        "$(awk -v t="$total" 'BEGIN { print t / 1000 }')" \
        "$(awk -v t="$bare" 'BEGIN { print t / 1000 }')" >>"$WORK/rows.md"
}

: >"$WORK/rows.md"
row base_stateless "baseline from_fn + jsonwebtoken" "$EXAMPLES/baseline_handwritten"
row qs_stateless "quickstart STATELESS=1" "$EXAMPLES/quickstart" STATELESS=1
row base_redis "baseline + one EXISTS" "$EXAMPLES/baseline_handwritten" REDIS_URL="$REDIS_URL"
row qs_redis "quickstart RedisStore (session token)" "$EXAMPLES/quickstart" REDIS_URL="$REDIS_URL"
row qs_near "quickstart RedisStore + NEAR_CACHE=1" "$EXAMPLES/quickstart" REDIS_URL="$REDIS_URL" NEAR_CACHE=1
row qs_stateless_off "quickstart STATELESS=1 METRICS=0" "$EXAMPLES/quickstart" STATELESS=1 METRICS=0
row qs_redis_off "quickstart RedisStore METRICS=0" "$EXAMPLES/quickstart" REDIS_URL="$REDIS_URL" METRICS=0

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
{
    echo
    echo "Instructions per request (user space, callgrind), wrk -t1 -c$CONNECTIONS -d$DURATION after a $WARMUP warm-up, GET /me:"
    echo
    echo "| server | requests | instructions / request | without SHA-256 blocks |"
    echo "| --- | ---: | ---: | ---: |"
    cat "$WORK/rows.md"
    echo
    echo "| ratio (baseline / quickstart: above 1, the quickstart runs fewer) | all | without SHA-256 blocks |"
    echo "| --- | ---: | ---: |"
    echo "| 1. stateless | $(ratio "${TOTAL[base_stateless]}" "${TOTAL[qs_stateless]}") | $(ratio "${BARE[base_stateless]}" "${BARE[qs_stateless]}") |"
    echo "| 2. Redis mode | $(ratio "${TOTAL[base_redis]}" "${TOTAL[qs_redis]}") | $(ratio "${BARE[base_redis]}" "${BARE[qs_redis]}") |"
    echo "| 3. quickstart stateless / quickstart near-cache | $(ratio "${TOTAL[qs_stateless]}" "${TOTAL[qs_near]}") | $(ratio "${BARE[qs_stateless]}" "${BARE[qs_near]}") |"
    echo "| metrics off / on, stateless | $(ratio "${TOTAL[qs_stateless_off]}" "${TOTAL[qs_stateless]}") | $(ratio "${BARE[qs_stateless_off]}" "${BARE[qs_stateless]}") |"
    echo "| metrics off / on, Redis mode | $(ratio "${TOTAL[qs_redis_off]}" "${TOTAL[qs_redis]}") | $(ratio "${BARE[qs_redis_off]}" "${BARE[qs_redis]}") |"
}
