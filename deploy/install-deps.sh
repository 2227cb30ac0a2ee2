#!/bin/sh
# install-deps.sh — install the Debian packages the build and tests need.
# Run as root (CI does). Otherwise it prints the exact command and fails.
set -eu

PKGS="build-essential pkg-config libhiredis-dev libevent-dev libjansson-dev \
libcurl4-openssl-dev libmbedtls-dev redis-server redis-tools python3 curl"

if [ "$(id -u)" != "0" ]; then
    echo "install-deps: missing build or test dependencies; as root run:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends $PKGS" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $PKGS
# Debian starts a system redis-server on install; the tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
