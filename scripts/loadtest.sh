#!/usr/bin/env bash
# Load test: tower-jwt-auth's quickstart against a hand-written axum
# middleware (examples/baseline_handwritten.rs), each mode one after the
# other, on loopback, with a private redis-server. Prints one markdown table.
#
#   scripts/loadtest.sh                      # DURATION=10s CONNECTIONS=64 THREADS=1
#   DURATION=30s CONNECTIONS=128 scripts/loadtest.sh
#
# Environment: DURATION (10s), WARMUP (2s), CONNECTIONS (64), THREADS (1),
# ROUNDS (1: every mode once; more: the modes are run round after round,
# interleaved, and the table shows the median of each figure),
# SERVER_CPU (0), CLIENT_CPU (1), SKIP_BUILD (unset), SKIP_MEMORY (unset: run
# examples/memory_sizing against the private Redis at the end), KEEP_LOGS
# (unset: the wrk, server, Redis and MONITOR outputs are deleted at the end).
#
# The ES256 rows (issue 17) verify one ES256 token of a local identity
# provider: the quickstart as a remote issuer found by discovery (keys from
# its JWKS, served by python3's http.server), with and without the token
# cache, and the baseline with the same public key given statically.
# Latency percentiles (p50, p99, p99.9) come from wrk's histogram through a
# Lua `done` hook. Built with the release profile of Cargo.toml (thin LTO,
# one codegen unit) and FEATURES (scripts/common.sh: remote-keys).
#
# Needs: cargo, curl, python3, redis-server, redis-cli, wrk (installed with apt-get
# when missing and run as root). Uses taskset, when present and there are at
# least two CPUs, to pin the server to SERVER_CPU and wrk + redis-server to
# CLIENT_CPU.

set -euo pipefail

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tower-jwt-auth-loadtest.XXXXXX")
PIDS=()
SERVER_PID=""
REDIS_PORT=""

# shellcheck source=scripts/common.sh
. "$ROOT/scripts/common.sh"

cleanup() {
    stop_all ${SERVER_PID:+"$SERVER_PID"}
    if [ -n "${KEEP_LOGS:-}" ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -------------------------------------------------------------------

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing wrk..."
        DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null 2>&1 \
            || { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null 2>&1; } \
            || die "could not install wrk"
    else
        die "wrk is not installed (apt-get install wrk, or brew install wrk)"
    fi
fi
need cargo curl python3 redis-server redis-cli wrk

SERVER_PIN=()
CLIENT_PIN=()
PINNING="none (taskset missing or fewer than 2 CPUs)"
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    SERVER_PIN=(taskset -c "$SERVER_CPU")
    CLIENT_PIN=(taskset -c "$CLIENT_CPU")
    PINNING="server on CPU $SERVER_CPU; wrk and redis-server on CPU $CLIENT_CPU"
fi

# --- build ---------------------------------------------------------------------

build_examples quickstart baseline_handwritten memory_sizing mint_token
QUICKSTART="$EXAMPLES/quickstart"
BASELINE="$EXAMPLES/baseline_handwritten"

# --- helpers ------------------------------------------------------------------

wait_http() { # url; fails when the server exits or does not answer in 30 s
    local deadline=$((SECONDS + 30))
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || die "server at $1 did not come up (log: $WORK/server.log)"
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.1
    done
}

# start_server NAME health_path env...: runs the binary NAME (quickstart or
# baseline) pinned to SERVER_CPU with the given environment; sets ADDR.
start_server() {
    local which=$1 health=$2; shift 2
    local bin=$QUICKSTART
    [ "$which" = baseline ] && bin=$BASELINE
    for _ in 1 2 3; do # a new port when the chosen one was taken meanwhile
        ADDR="127.0.0.1:$(free_port)"
        env -u REDIS_URL -u STATELESS -u NEAR_CACHE -u JWT_SECRET -u OIDC_ISSUERS -u TOKEN_CACHE \
            QUICKSTART_ADDR="$ADDR" BASELINE_ADDR="$ADDR" RUST_LOG=warn ACCESS_TTL_SECS=3600 "$@" \
            ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "$bin" >"$WORK/server.log" 2>&1 &
        SERVER_PID=$!
        wait_http "http://$ADDR$health" && return 0
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    done
    cat "$WORK/server.log" >&2
    die "$which did not start"
}

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

login() { # prints the access token
    curl -fsS -X POST "http://$ADDR/login" -H 'content-type: application/json' \
        -d '{"username":"alice","password":"alice-pw","device":"loadtest"}' \
        | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# CPU time (user + system) of the server process so far, in clock ticks.
server_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat" 2>/dev/null || echo 0; }

# Redis's own CPU time so far, in seconds (user + system, main thread included).
redis_cpu() {
    rcli INFO cpu | tr -d '\r' | awk -F: '$1 == "used_cpu_user" || $1 == "used_cpu_sys" { t += $2 } END { printf "%.6f", t }'
}

# Per-command call counts: "name calls" lines.
commandstats() {
    rcli INFO commandstats | tr -d '\r' \
        | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p' | sort
}

# Commands the server sends to Redis per request, counted exactly with
# MONITOR over 100 sequential requests (commands run inside a script are
# shown as "lua" by MONITOR and not counted: they are no round trip).
# Sets MONITOR_RESULT.
monitor_count() { # path token
    local out="$WORK/monitor-${1//\//}-$RANDOM.txt" n=100 status
    redis-cli -p "$REDIS_PORT" MONITOR >"$out" &
    local mon=$!
    PIDS+=("$mon")
    sleep 0.3
    for _ in $(seq 1 "$n"); do
        status=$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $2" "http://$ADDR$1")
        [ "$status" = 200 ] || die "GET $1 answered $status during the MONITOR count"
    done
    sleep 0.3
    kill "$mon" 2>/dev/null || true
    wait "$mon" 2>/dev/null || true
    local client
    client=$(grep -c '\[[0-9]* 127\.0\.0\.1:[0-9]*\]' "$out" || true)
    MONITOR_RESULT=$(awk -v c="$client" -v n="$n" 'BEGIN { printf "%.2f", c / n }')
}

DISCARDED=()
declare -A P50 P999 P50_MED P999_MED
declare -A RPS P99 CMDS BREAKDOWN LABEL ROUTE RPS_MED P99_MED RCPU RCPU_MED ERRORS SCPU SCPU_MED
KEYS=()

# wrk prints p50, p99 and p99.9 of its latency histogram (µs) when done.
cat >"$WORK/percentiles.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("percentiles_us %d %d %d\n", latency:percentile(50),
    latency:percentile(99), latency:percentile(99.9)))
end
LUA

# wrk's latency ("950.00us", "12.65ms", "1.02s") in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    }'
}

minimum() { printf '%s\n' "$@" | sort -g | head -1; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# run KEY LABEL PATH TOKEN REDIS(0|1): one measured wrk run against $ADDR.
# A run with more than 1% non-2xx answers (e.g. a stall of the machine made
# Redis miss the 100 ms store deadline and the circuit breaker opened) is
# discarded, reported, and run again once.
run() {
    local key=$1 label=$2 path=$3 token=$4 redis=$5
    local out="$WORK/wrk-$key-$ROUND.txt"
    local before="" cpu_before="" ticks_before ticks_after requests rps p50 p99 p999 errors attempt
    for attempt in 1 2; do
        log "[round $ROUND/$ROUNDS] [$key] $label: warm-up $WARMUP, then $DURATION with $CONNECTIONS connections"
        ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" \
            -H "authorization: Bearer $token" "http://$ADDR$path" >/dev/null
        if [ "$redis" = 1 ]; then before=$(commandstats); cpu_before=$(redis_cpu); fi
        ticks_before=$(server_ticks)
        ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
            -s "$WORK/percentiles.lua" -H "authorization: Bearer $token" "http://$ADDR$path" >"$out"
        ticks_after=$(server_ticks)
        cat "$out" >&2
        requests=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out")
        errors=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$out")
        errors=${errors:-0}
        [ "$errors" -gt $(( ${requests:-0} / 100 )) ] || break
        local reasons
        reasons=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/server.log" | grep -o 'WARN.*' | sed 's/^[^:]*: //' \
            | sort | uniq -c | sort -rn | head -3 | sed 's/^ */  /')
        log "[$key] $errors non-2xx responses out of $requests; server warnings:"
        log "$reasons"
        DISCARDED+=("round $ROUND, ${label}: $errors of $requests requests answered non-2xx; server log: $(echo "$reasons" | head -2 | tr -s ' ' | tr '\n' ';')")
        [ "$attempt" = 1 ] || die "[$key] failed twice"
        sleep 2
    done
    ERRORS[$key]=$(( ${ERRORS[$key]:-0} + errors ))
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$out")
    read -r p50 p99 p999 < <(awk '$1 == "percentiles_us" { printf "%.3f %.3f %.3f\n", $2 / 1000, $3 / 1000, $4 / 1000 }' "$out")
    [ -n "${p999:-}" ] || p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    [ -n "$requests" ] && [ -n "$rps" ] || die "[$key] could not read wrk's output"
    [ -n "${LABEL[$key]:-}" ] || KEYS+=("$key")
    LABEL[$key]=$label
    ROUTE[$key]=$path
    RPS[$key]="${RPS[$key]:-} $rps"
    SCPU[$key]="${SCPU[$key]:-} $(awk -v a="$ticks_after" -v b="$ticks_before" -v t="$CLK_TCK" -v r="$requests" 'BEGIN { printf "%.2f", (a - b) / t * 1e6 / r }')"
    P99[$key]="${P99[$key]:-} $p99"
    P50[$key]="${P50[$key]:-} ${p50:-0}"
    P999[$key]="${P999[$key]:-} ${p999:-0}"
    if [ "$redis" = 1 ]; then
        local after breakdown cpu_after
        cpu_after=$(redis_cpu)
        after=$(commandstats)
        RCPU[$key]="${RCPU[$key]:-} $(awk -v a="$cpu_after" -v b="$cpu_before" -v r="$requests" 'BEGIN { printf "%.2f", (a - b) * 1e6 / r }')"
        # Calls during the run per request, by command (script-internal calls included).
        breakdown=$(join -a2 -e0 -o 0,1.2,2.2 <(echo "$before") <(echo "$after") \
            | awk -v r="$requests" '$1 != "info" && $3 > $2 { printf "%s %.2f, ", $1, ($3 - $2) / r }')
        BREAKDOWN[$key]=${breakdown%, }
        log "[$key] Redis calls per request during the run: ${BREAKDOWN[$key]:-none}"
        monitor_count "$path" "$token"
        CMDS[$key]=$MONITOR_RESULT
        log "[$key] Redis commands per request (MONITOR, 100 requests): ${CMDS[$key]}"
    fi
}

# --- Redis --------------------------------------------------------------------

REDIS_LOG="$WORK/redis.log" start_redis --dir "$WORK"

# --- tokens -------------------------------------------------------------------
# One session-bound token (a session in the private Redis) for every run but
# MemoryStore's, so that stateless, Redis and near-cache modes verify the very
# same token and the ratios compare only what the modes do. Same secret,
# issuer and audience everywhere, so the baseline accepts it.

start_server quickstart /health REDIS_URL="$REDIS_URL"
TOKEN=$(login)
stop_server
[ -n "$TOKEN" ] || die "login failed"

# A local identity provider: discovery document and JWKS (the public half of
# tests/keys/ec_p256_public.pem, kid ec-1) as static files, and one ES256
# token of it.
IDP_PORT=$(free_port)
IDP="http://127.0.0.1:$IDP_PORT"
mkdir -p "$WORK/idp/.well-known"
printf '{"issuer":"%s","jwks_uri":"%s/jwks.json"}' "$IDP" "$IDP" >"$WORK/idp/.well-known/openid-configuration"
cp "$ROOT/tests/keys/jwks.json" "$WORK/idp/jwks.json"
${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} python3 -m http.server --bind 127.0.0.1 --directory "$WORK/idp" "$IDP_PORT" \
    >"$WORK/idp.log" 2>&1 &
PIDS+=($!)
wait_for_http "$IDP/.well-known/openid-configuration"
TOKEN_ES256=$(MINT_ISSUER="$IDP" MINT_KEY="$ROOT/tests/keys/ec_p256_private.pem" MINT_KID=ec-1 "$EXAMPLES/mint_token")
[ -n "$TOKEN_ES256" ] || die "could not mint the ES256 token"
ES256_PUBLIC="$ROOT/tests/keys/ec_p256_public.pem"

# --- runs ---------------------------------------------------------------------

ROUNDS=${ROUNDS:-1}
for ROUND in $(seq 1 "$ROUNDS"); do
    start_server baseline /bare
    run bare "baseline, no middleware" /bare "$TOKEN" 0
    run base_stateless "baseline from_fn + jsonwebtoken" /me "$TOKEN" 0
    stop_server

    start_server quickstart /health STATELESS=1
    run qs_stateless "quickstart STATELESS=1" /me "$TOKEN" 0
    stop_server

    start_server baseline /bare REDIS_URL="$REDIS_URL"
    run base_redis "baseline + one EXISTS" /me "$TOKEN" 1
    stop_server

    start_server quickstart /health REDIS_URL="$REDIS_URL"
    run qs_redis "quickstart RedisStore (session token)" /me "$TOKEN" 1
    stop_server

    start_server quickstart /health REDIS_URL="$REDIS_URL" NEAR_CACHE=1
    run qs_near "quickstart RedisStore + NEAR_CACHE=1" /me "$TOKEN" 1
    stop_server

    start_server baseline /bare BASELINE_ES256_KEY="$ES256_PUBLIC" BASELINE_ISSUER="$IDP"
    run base_es256 "baseline from_fn + jsonwebtoken ES256 (static key)" /me "$TOKEN_ES256" 0
    stop_server

    start_server quickstart /health STATELESS=1 OIDC_ISSUERS="$IDP"
    run qs_es256 "quickstart STATELESS=1, ES256 remote issuer, token cache" /me "$TOKEN_ES256" 0
    stop_server

    start_server quickstart /health STATELESS=1 OIDC_ISSUERS="$IDP" TOKEN_CACHE=0
    run qs_es256_nocache "quickstart STATELESS=1, ES256 remote issuer, no token cache" /me "$TOKEN_ES256" 0
    stop_server

    start_server quickstart /health
    TOKEN_MEMORY=$(login)
    run qs_memory "quickstart MemoryStore (session token)" /me "$TOKEN_MEMORY" 0
    stop_server
done

# --- report -------------------------------------------------------------------

# shellcheck disable=SC2086 # word splitting of the per-round lists is wanted
for key in "${KEYS[@]}"; do
    RPS_MED[$key]=$(median ${RPS[$key]})
    P99_MED[$key]=$(median ${P99[$key]})
    P50_MED[$key]=$(median ${P50[$key]})
    P999_MED[$key]=$(median ${P999[$key]})
    # Other load on the machine only ever adds CPU time (cache and core
    # contention): the best round is the closest to the intrinsic cost.
    SCPU_MED[$key]=$(minimum ${SCPU[$key]})
    if [ -n "${RCPU[$key]:-}" ]; then RCPU_MED[$key]=$(median ${RCPU[$key]}); fi
done

ratio() { awk -v a="${RPS_MED[$1]}" -v b="${RPS_MED[$2]}" 'BEGIN { printf "%.2f", a / b }'; }
# The same comparison by server CPU per request (b's cost / a's cost, best
# round of each): what the throughput ratio would be with the server core
# saturated; much less sensitive to other load on the machine than req/s.
cpu_ratio() { awk -v a="${SCPU_MED[$1]}" -v b="${SCPU_MED[$2]}" 'BEGIN { printf "%.2f", b / a }'; }
at_least() { awk -v r="$1" -v g="$2" 'BEGIN { print (r >= g) ? "yes" : "**no**" }'; }
# The median, over the rounds, of the two modes' req/s ratio within a round:
# the two ran minutes apart at most, so a slow drift of the machine's other
# load cancels out (with one round, the same as `ratio`).
# shellcheck disable=SC2086 # word splitting of the per-round lists is wanted
paired() {
    median $(paste -d' ' <(printf '%s\n' ${RPS[$1]}) <(printf '%s\n' ${RPS[$2]}) \
        | awk '{ printf "%.3f\n", $1 / $2 }') | awk '{ printf "%.2f", $1 }'
}

P1=$(paired qs_stateless base_stateless)
P2=$(paired qs_redis base_redis)
P3=$(paired qs_near qs_stateless)
R1=$(ratio qs_stateless base_stateless)
R2=$(ratio qs_redis base_redis)
R3=$(ratio qs_near qs_stateless)
R4=$(ratio qs_memory base_stateless)
K1=$(cpu_ratio qs_stateless base_stateless)
K2=$(cpu_ratio qs_redis base_redis)
K3=$(cpu_ratio qs_near qs_stateless)
E1=$(ratio qs_es256 qs_stateless)
E2=$(ratio qs_es256 base_es256)
E3=$(ratio qs_es256_nocache base_es256)
EP1=$(paired qs_es256 qs_stateless)
EP2=$(paired qs_es256 base_es256)
EK1=$(cpu_ratio qs_es256 qs_stateless)
EK2=$(cpu_ratio qs_es256 base_es256)
T1=$(awk -v a="${P99_MED[qs_redis]}" -v b="${P99_MED[base_redis]}" 'BEGIN { printf "%.2f", a / b }')
T2=$(awk -v a="${P999_MED[qs_redis]}" -v b="${P999_MED[base_redis]}" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
T3=$(awk -v a="${RCPU_MED[qs_redis]}" -v b="${RCPU_MED[base_redis]}" 'BEGIN { printf "%.2f", a / b }')
C1=${CMDS[qs_redis]}
C2=${CMDS[qs_near]}
C1_OK=$([ "$C1" = "1.00" ] && echo yes || echo "**no**")
C2_OK=$(awk -v c="$C2" 'BEGIN { print (c < 0.05) ? "yes" : "**no**" }')
WHAT=$([ "$ROUNDS" -gt 1 ] && echo "median of $ROUNDS rounds" || echo "one round")

{
    echo
    echo "Load test ($WHAT): wrk -t$THREADS -c$CONNECTIONS -d$DURATION after a $WARMUP warm-up, loopback;"
    echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //')); pinning: $PINNING; redis $(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')."
    echo
    echo "| server | route | req/s | p50 (ms) | p99 (ms) | p99.9 (ms) | non-2xx | server CPU / request (µs, best round) | Redis commands / request | Redis CPU / request (µs) |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for key in "${KEYS[@]}"; do
        printf '| %s | `%s` | %.0f | %.2f | %.2f | %.2f | %s | %s | %s | %s |\n' "${LABEL[$key]}" "${ROUTE[$key]}" \
            "${RPS_MED[$key]}" "${P50_MED[$key]}" "${P99_MED[$key]}" "${P999_MED[$key]}" "${ERRORS[$key]:-0}" \
            "${SCPU_MED[$key]}" "${CMDS[$key]:--}" "${RCPU_MED[$key]:--}"
    done
    echo
    echo "Issue 17 (ES256 and the tail):"
    echo
    echo "| ratio | by req/s (medians) | by req/s (paired rounds) | by server CPU / request | goal | met (req/s medians, paired, CPU) |"
    echo "| --- | ---: | ---: | ---: | ---: | --- |"
    echo "| 1a. ES256 remote issuer, cached / quickstart HS256 stateless | $E1 | $EP1 | $EK1 | ≥ 0.90 | $(at_least "$E1" 0.9), $(at_least "$EP1" 0.9), $(at_least "$EK1" 0.9) |"
    echo "| 1b. ES256 remote issuer, cached / baseline ES256 | $E2 | $EP2 | $EK2 | ≥ 3 | $(at_least "$E2" 3), $(at_least "$EP2" 3), $(at_least "$EK2" 3) |"
    echo "| ES256 remote issuer, no cache / baseline ES256 | $E3 | $(paired qs_es256_nocache base_es256) | $(cpu_ratio qs_es256_nocache base_es256) | (info) | |"
    echo "| 3. Redis mode req/s / baseline + EXISTS | $R2 | $P2 | $K2 | ≥ 1.00 | $(at_least "$R2" 1), $(at_least "$P2" 1), $(at_least "$K2" 1) |"
    echo
    echo "| 3. Redis mode against baseline + EXISTS | quickstart | baseline | ratio | goal | met |"
    echo "| --- | ---: | ---: | ---: | ---: | --- |"
    echo "| p99 (ms, median of rounds) | ${P99_MED[qs_redis]} | ${P99_MED[base_redis]} | $T1 | ≤ 1.10 | $(at_least 1.1 "$T1") |"
    echo "| p99.9 (ms) | ${P999_MED[qs_redis]} | ${P999_MED[base_redis]} | $T2 | (info) | |"
    echo "| Redis CPU / request (µs) | ${RCPU_MED[qs_redis]} | ${RCPU_MED[base_redis]} | $T3 | ≤ 1.00 | $(at_least 1 "$T3") |"
    echo
    echo "| ratio | by req/s (medians) | by req/s (paired rounds) | by server CPU / request | goal | met (req/s medians, paired, CPU) |"
    echo "| --- | ---: | ---: | ---: | ---: | --- |"
    echo "| 1. quickstart stateless / baseline stateless | $R1 | $P1 | $K1 | ≥ 1.00 | $(at_least "$R1" 1), $(at_least "$P1" 1), $(at_least "$K1" 1) |"
    echo "| 2. quickstart RedisStore / baseline + EXISTS | $R2 | $P2 | $K2 | ≥ 1.00 | $(at_least "$R2" 1), $(at_least "$P2" 1), $(at_least "$K2" 1) |"
    echo "| 3. quickstart near-cache / quickstart stateless | $R3 | $P3 | $K3 | ≥ 0.95 | $(at_least "$R3" 0.95), $(at_least "$P3" 0.95), $(at_least "$K3" 0.95) |"
    echo "| quickstart MemoryStore / baseline stateless | $R4 | $(paired qs_memory base_stateless) | $(cpu_ratio qs_memory base_stateless) | (info) | |"
    echo
    echo "| Redis commands per request | value | goal | met |"
    echo "| --- | ---: | ---: | --- |"
    echo "| 2. quickstart RedisStore | $C1 | exactly 1 | $C1_OK |"
    echo "| 3. quickstart near-cache (hot token) | $C2 | 0 | $C2_OK |"
    if [ "$ROUNDS" -gt 1 ]; then
        echo
        echo "Per-round req/s:"
        for key in "${KEYS[@]}"; do echo "- ${LABEL[$key]}:${RPS[$key]} (server CPU µs/request:${SCPU[$key]})"; done
    fi
    if [ "${#DISCARDED[@]}" -gt 0 ]; then
        echo
        echo "Discarded and repeated runs:"
        for d in "${DISCARDED[@]}"; do echo "- $d"; done
    fi
    echo
    echo "Redis calls per request during the measured runs, script-internal calls included (INFO commandstats):"
    echo "- baseline + EXISTS: ${BREAKDOWN[base_redis]:-none}"
    echo "- quickstart RedisStore: ${BREAKDOWN[qs_redis]:-none}"
    echo "- quickstart near-cache: ${BREAKDOWN[qs_near]:-none}"
}

if [ -z "${SKIP_MEMORY:-}" ] && [ -x "$EXAMPLES/memory_sizing" ]; then
    echo
    echo "Memory (examples/memory_sizing):"
    REDIS_URL="$REDIS_URL/1" "$EXAMPLES/memory_sizing" | sed 's/^/- /'
fi
