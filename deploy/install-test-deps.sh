#!/bin/sh
# install-test-deps.sh — the tools some tests drive besides the build's own
# dependencies: Debian's chromium (the dashboard test renders the page in
# headless Chromium) and docker-compose (the compose file is validated with
# `docker-compose config`; no Docker engine is needed for that). CI runs it
# as root; elsewhere it prints the command. Tests that need a missing tool
# say so and fail only when QT_REQUIRE_TEST_TOOLS=1 (CI sets it).
set -eu

PKGS="chromium docker-compose"

missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != "0" ]; then
    echo "install-test-deps: missing$missing; as root run:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends $PKGS" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $PKGS
