#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine too: installs what the
# tests need when it is missing (apt-get, as root), then runs
# `cargo test --all-features` (extra arguments are passed on to it).
# The tests start their own redis-server processes on free ports; the
# distribution's service is not needed and may stay stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl) # TLS test certificates

# --- node: for the remote-keys (OIDC) tests, once tests/oidc/ exists -------
if [ -f tests/oidc/package.json ]; then
    command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
    command -v npm >/dev/null 2>&1 || need_apt+=(npm)
fi
# ---------------------------------------------------------------------------

if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing: ${need_apt[*]}; install them (apt-get install ${need_apt[*]}) or run this as root" >&2
        exit 1
    fi
    echo "installing: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --- node: the OIDC tests' packages ------------------------------------------
if [ -f tests/oidc/package.json ]; then
    if [ -f tests/oidc/package-lock.json ]; then
        (cd tests/oidc && npm ci --no-audit --no-fund)
    else
        (cd tests/oidc && npm install --no-audit --no-fund)
    fi
    node --version
fi
# ---------------------------------------------------------------------------

command -v cargo >/dev/null 2>&1 || {
    echo "cargo is missing: install a Rust toolchain (rustup)" >&2
    exit 1
}
redis-server --version
cargo --version

cargo test --all-features "$@"
