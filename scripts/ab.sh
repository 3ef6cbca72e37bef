#!/usr/bin/env bash
# Paired A/B of goal 2 (or goal 1): the quickstart and the hand-written
# baseline run at the same time (both pinned to SERVER_CPU, only one loaded
# at a time), and short wrk runs alternate between them (ABBA order), so
# that each pair of runs is seconds apart. On a machine whose speed drifts
# (a shared VM), the median of many such paired ratios is steadier than the
# ratio of medians of scripts/loadtest.sh, whose modes run a minute apart.
#
#   scripts/ab.sh                          # MODE=redis PAIRS=20 DURATION=3s
#   MODE=stateless PAIRS=30 scripts/ab.sh
#   MODE=near scripts/ab.sh                # issue 13: near-cache / stateless
#   AGAINST=metrics-off scripts/ab.sh      # the quickstart against itself with METRICS=0
#
# Environment: MODE (redis: RedisStore against baseline + EXISTS; stateless:
# STATELESS=1 against the baseline without Redis; near: RedisStore with
# NEAR_CACHE=1 against the quickstart with STATELESS=1 as the reference,
# both the same binary), PAIRS (20), DURATION (3s), CONNECTIONS (64),
# SERVER_CPU (0), CLIENT_CPU (1), SKIP_BUILD, AGAINST (baseline: the
# hand-written baseline; metrics-off: a second quickstart, same mode, with
# METRICS=0, so the ratio is the cost of the metrics).
# Needs: cargo, curl, redis-server, redis-cli, wrk; taskset when present.

set -euo pipefail

MODE=${MODE:-redis}
PAIRS=${PAIRS:-20}
DURATION=${DURATION:-3s}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PIDS=()
# shellcheck source=scripts/common.sh
. "$ROOT/scripts/common.sh"
trap stop_all EXIT
trap 'exit 130' INT TERM

case "$MODE" in redis | stateless | near) ;; *) die "MODE is redis, stateless or near" ;; esac
AGAINST=${AGAINST:-baseline}
case "$AGAINST" in baseline | metrics-off) ;; *) die "AGAINST is baseline or metrics-off" ;; esac
need cargo curl redis-server redis-cli wrk
SERVER_PIN=()
CLIENT_PIN=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    SERVER_PIN=(taskset -c "$SERVER_CPU")
    CLIENT_PIN=(taskset -c "$CLIENT_CPU")
fi

build_examples quickstart baseline_handwritten

start_redis

# The token: from a RedisStore quickstart (a session in the private Redis).
QS_ADDR="127.0.0.1:$(free_port)"
BASE_ADDR="127.0.0.1:$(free_port)"
QS_ENV=(REDIS_URL="$REDIS_URL")
BASE_ENV=(REDIS_URL="$REDIS_URL")
# The reference server ("baseline" in the table): the hand-written one, or
# for MODE=near the quickstart itself, stateless.
REF_BIN="$EXAMPLES/baseline_handwritten"
REF_HEALTH=/bare
if [ "$MODE" = near ]; then
    QS_ENV=(REDIS_URL="$REDIS_URL" NEAR_CACHE=1)
    BASE_ENV=(QUICKSTART_ADDR="$BASE_ADDR" ACCESS_TTL_SECS=3600 RUST_LOG=warn STATELESS=1)
    REF_BIN="$EXAMPLES/quickstart"
    REF_HEALTH=/health
    LOGIN_ADDR=$QS_ADDR
elif [ "$MODE" = stateless ]; then
    LOGIN_ADDR="127.0.0.1:$(free_port)"
    env QUICKSTART_ADDR="$LOGIN_ADDR" REDIS_URL="$REDIS_URL" ACCESS_TTL_SECS=3600 RUST_LOG=warn \
        "$EXAMPLES/quickstart" >/dev/null 2>&1 &
    PIDS+=($!)
    wait_for_http "http://$LOGIN_ADDR/health"
    QS_ENV=(STATELESS=1)
    BASE_ENV=()
else
    LOGIN_ADDR=$QS_ADDR
fi
env QUICKSTART_ADDR="$QS_ADDR" ACCESS_TTL_SECS=3600 RUST_LOG=warn ${QS_ENV[@]+"${QS_ENV[@]}"} \
    ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "$EXAMPLES/quickstart" >/dev/null 2>&1 &
QS_PID=$!
PIDS+=("$QS_PID")
if [ "$AGAINST" = metrics-off ]; then
    BASE_ENV=(QUICKSTART_ADDR="$BASE_ADDR" ACCESS_TTL_SECS=3600 RUST_LOG=warn METRICS=0 ${QS_ENV[@]+"${QS_ENV[@]}"})
    REF_BIN="$EXAMPLES/quickstart"
    REF_HEALTH=/health
fi
env BASELINE_ADDR="$BASE_ADDR" ${BASE_ENV[@]+"${BASE_ENV[@]}"} \
    ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "$REF_BIN" >/dev/null 2>&1 &
BASE_PID=$!
PIDS+=("$BASE_PID")
wait_for_http "http://$QS_ADDR/health"
wait_for_http "http://$BASE_ADDR$REF_HEALTH"
TOKEN=$(curl -fsS -X POST "http://$LOGIN_ADDR/login" -H 'content-type: application/json' \
    -d '{"username":"alice","password":"alice-pw","device":"ab"}' \
    | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || die "login failed"

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# wrk prints its p99 latency (µs) when done.
LUA=$(mktemp "${TMPDIR:-/tmp}/tower-jwt-auth-ab.XXXXXX.lua")
trap 'stop_all; rm -f "$LUA"' EXIT
echo 'done = function(s, latency, r) io.write(string.format("p99_us %d\n", latency:percentile(99))) end' >"$LUA"
# run ADDR PID: prints "requests cpu_ticks p99_us non_2xx".
run() {
    local before after out
    before=$(ticks "$2")
    out=$(${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$LUA" \
        -H "authorization: Bearer $TOKEN" "http://$1/me")
    after=$(ticks "$2")
    echo "$(awk '/requests in/ { print $1 }' <<<"$out") $((after - before)) \
        $(awk '$1 == "p99_us" { print $2 }' <<<"$out") $(awk '/Non-2xx/ { print $NF }' <<<"$out")"
}
for addr in "$QS_ADDR" "$BASE_ADDR"; do # warm-up
    ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} wrk -t1 -c"$CONNECTIONS" -d2s \
        -H "authorization: Bearer $TOKEN" "http://$addr/me" >/dev/null
done

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
log "mode $MODE against $AGAINST: $PAIRS pairs of ${DURATION} runs (ABBA order)"
echo "| pair | $AGAINST req | quickstart req | req ratio | $AGAINST CPU µs/req | quickstart CPU µs/req | CPU ratio | $AGAINST p99 (ms) | quickstart p99 (ms) | p99 ratio |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
RATIOS=()
CPU_RATIOS=()
P99_RATIOS=()
for i in $(seq 1 "$PAIRS"); do
    if [ $((i % 2)) = 1 ]; then
        read -r br bt bp be < <(run "$BASE_ADDR" "$BASE_PID")
        read -r qr qt qp qe < <(run "$QS_ADDR" "$QS_PID")
    else
        read -r qr qt qp qe < <(run "$QS_ADDR" "$QS_PID")
        read -r br bt bp be < <(run "$BASE_ADDR" "$BASE_PID")
    fi
    [ -z "${be:-}" ] && [ -z "${qe:-}" ] || die "non-2xx answers in pair $i (baseline ${be:-0}, quickstart ${qe:-0})"
    read -r ratio cpu_ratio p99_ratio row < <(awk -v br="$br" -v bt="$bt" -v qr="$qr" -v qt="$qt" -v hz="$CLK_TCK" -v i="$i" -v bp="$bp" -v qp="$qp" 'BEGIN {
        bc = bt * 1e6 / hz / br; qc = qt * 1e6 / hz / qr
        printf "%.3f %.3f %.3f | %d | %d | %d | %.3f | %.2f | %.2f | %.3f | %.2f | %.2f | %.3f |\n", qr / br, bc / qc, qp / bp, i, br, qr, qr / br, bc, qc, bc / qc, bp / 1000, qp / 1000, qp / bp }')
    echo "$row"
    RATIOS+=("$ratio")
    CPU_RATIOS+=("$cpu_ratio")
    P99_RATIOS+=("$p99_ratio")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { printf "%.3f", (a[int((NR + 1) / 2)] + a[int(NR / 2) + 1]) / 2 }'; }
echo
echo "Quickstart / $AGAINST ($MODE), median of $PAIRS paired ratios: **$(median "${RATIOS[@]}")** by req/s, **$(median "${CPU_RATIOS[@]}")** by server CPU per request, **$(median "${P99_RATIOS[@]}")** by p99 latency (lower is better)."
