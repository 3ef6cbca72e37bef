#!/usr/bin/env bash
# The screenshot of dashboards/tower-jwt-auth.json in the README, from a
# real run: the release quickstart against a private redis-server, known
# traffic with a Redis outage, /metrics scraped every second, each panel
# drawn from the scraped series (scripts/dashboard_shot.py).
#
#   scripts/dashboard-shot.sh              # 100 s run -> docs/dashboard.png
#   SECONDS_RUN=60 OUT=/tmp/d.png SKIP_BUILD=1 scripts/dashboard-shot.sh
#
# Needs: cargo, redis-server, python3 with matplotlib (installed with pip
# when missing).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PIDS=()
# shellcheck source=scripts/common.sh
. "$ROOT/scripts/common.sh"

need cargo redis-server python3
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install --quiet matplotlib
build_examples quickstart
python3 "$ROOT/scripts/dashboard_shot.py" "$EXAMPLES/quickstart" \
    "${OUT:-$ROOT/docs/dashboard.png}" "${SECONDS_RUN:-100}"
