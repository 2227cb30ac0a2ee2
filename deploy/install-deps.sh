#!/bin/sh
# install-deps.sh [--test-tools] — install the Debian packages the build and
# tests need; with --test-tools, the tools some tests drive besides those:
# Debian's chromium (the dashboard test renders the page headless),
# docker-compose (the compose file is checked with `docker-compose config`;
# no Docker engine is needed for that) and prometheus (promtool checks the
# shipped config and rules; test_monitoring scrapes the stack with it) and
# python3-redis (the documented Python member is run against the stack;
# bus_bench measures a Python consumer beside ours). Tests that need a missing tool say
# so and fail only when QT_REQUIRE_TEST_TOOLS=1 (CI sets it).
# Run as root (CI does). Otherwise it prints the exact command and fails.
set -eu

PKGS="build-essential pkg-config libhiredis-dev libevent-dev libjansson-dev \
libcurl4-openssl-dev libmbedtls-dev redis-server redis-tools python3 curl"
TEST_TOOLS="chromium docker-compose prometheus python3-redis"

case "${1:-}" in
    "") what="build or test dependencies" ;;
    --test-tools)
        missing=""
        for t in $TEST_TOOLS; do
            case $t in
                python3-redis) /usr/bin/python3 -c 'import redis' >/dev/null 2>&1 || missing="$missing $t" ;;
                *) command -v "$t" >/dev/null 2>&1 || missing="$missing $t" ;;
            esac
        done
        [ -z "$missing" ] && exit 0
        PKGS=$TEST_TOOLS what="test tools:$missing" ;;
    *) echo "usage: install-deps.sh [--test-tools]" >&2; exit 2 ;;
esac

if [ "$(id -u)" != "0" ]; then
    echo "install-deps: missing $what; as root run:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends $PKGS" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $PKGS
# Debian starts a system redis-server on install; the tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
