#!/bin/sh
# run.sh [BUILD] — the whole stack on this machine; what `make run` does.
#
# Uses REDIS_URL when that Redis answers, else starts a private redis-server
# (AOF on, data in $QT_RUN_DIR/redis). Starts the five services on the
# synthetic feed paced in real time (QT_FEED_SPEED, default 1), the paper
# venue and mode SHADOW, waits until every one is ready, prints where to
# look, and runs until Ctrl-C (or SIGTERM): then every service gets SIGTERM
# (drain: in-flight work finished, acks sent), the private Redis is shut
# down, and nothing is left running.
#
#   QT_RUN_DIR        data and logs (default .qt-run): logs/<service>.log,
#                     redis/ (AOF), api-token (the API token, mode 600), pids
#   QT_RUN_PORT_BASE  trading-engine's port; the others follow (default 8081:
#                     8081 engine, 8082 ml-threshold, 8083 rl-decision,
#                     8084 trade-executor, 8085 policy-store)
#   QT_RUN_REDIS_PORT the private redis-server's port (default 6390)
#   QT_API_TOKEN      used when set, else one is generated into $QT_RUN_DIR/api-token
# Any other QT_*/RL_*/ML_*/ORCH_* variable reaches the services unchanged.
set -u

BUILD=${1:-build}
DIR=${QT_RUN_DIR:-.qt-run}
BASE=${QT_RUN_PORT_BASE:-8081}
RPORT=${QT_RUN_REDIS_PORT:-6390}
BIN=$BUILD/bin
PIDS=""
REDIS_PID=""

say() { printf '%s\n' "$@"; }
die() { say "make run: $*" >&2; exit 1; }

stop_all() {
    trap - INT TERM EXIT
    [ -n "$PIDS$REDIS_PID" ] || return 0
    say "" "stopping: SIGTERM to every service (they drain and ack first) ..."
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
    for p in $PIDS; do
        n=0
        while kill -0 "$p" 2>/dev/null && [ $n -lt 150 ]; do sleep 0.1; n=$((n + 1)); done
        kill -0 "$p" 2>/dev/null && { say "pid $p did not stop in 15 s: SIGKILL"; kill -KILL "$p" 2>/dev/null; }
        wait "$p" 2>/dev/null
    done
    if [ -n "$REDIS_PID" ]; then
        redis-cli -p "$RPORT" shutdown >/dev/null 2>&1 || kill -TERM "$REDIS_PID" 2>/dev/null
        wait "$REDIS_PID" 2>/dev/null
    fi
    rm -f "$DIR/pids"
    say "stopped; data and logs stay in $DIR"
}

start_redis() {
    if [ -n "${REDIS_URL:-}" ] && redis-cli -u "$REDIS_URL" ping 2>/dev/null | grep -q PONG; then
        say "using the Redis at REDIS_URL"
        return 0
    fi
    mkdir -p "$DIR/redis"
    redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$DIR/redis" --appendonly yes \
        --appendfsync everysec --save "" --proto-max-bulk-len 16mb --daemonize no >"$DIR/logs/redis.log" 2>&1 &
    REDIS_PID=$!
    echo "$REDIS_PID" >>"$DIR/pids"
    REDIS_URL=redis://127.0.0.1:$RPORT/0
    n=0
    until redis-cli -p "$RPORT" ping 2>/dev/null | grep -q PONG; do
        kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server did not start (see $DIR/logs/redis.log)"
        [ $n -lt 100 ] || die "redis-server does not answer on port $RPORT"
        sleep 0.1; n=$((n + 1))
    done
    say "started redis-server on port $RPORT (AOF in $DIR/redis)"
}

# start NAME PORT [VAR=VALUE...]
start() {
    name=$1 port=$2
    shift 2
    env "$@" QT_HTTP_PORT="$port" "$BIN/$name" >>"$DIR/logs/$name.log" 2>&1 &
    PIDS="$PIDS $!"
    eval "NAME_$!=$name"
    echo "$!" >>"$DIR/pids"
}

# exited PID: which service it was and the end of its log, on stderr
exited() {
    eval "n=\${NAME_$1:-}"
    say "$n (pid $1) exited; the end of $DIR/logs/$n.log:" >&2
    tail -n 5 "$DIR/logs/$n.log" >&2 2>/dev/null
}

urls() {
    export QT_TRADING_ENGINE_URL=http://127.0.0.1:$BASE QT_ML_THRESHOLD_URL=http://127.0.0.1:$((BASE + 1))
    export QT_RL_DECISION_URL=http://127.0.0.1:$((BASE + 2)) QT_TRADE_EXECUTOR_URL=http://127.0.0.1:$((BASE + 3))
    export QT_POLICY_STORE_URL=http://127.0.0.1:$((BASE + 4))
    export QT_CORS_ORIGINS="${QT_CORS_ORIGINS:-http://127.0.0.1:$BASE,http://localhost:$BASE}" # the dashboard's origin
}

wait_ready() {
    n=0
    until "$BIN/qtctl" status >/dev/null 2>&1; do
        for p in $PIDS; do kill -0 "$p" 2>/dev/null || { "$BIN/qtctl" status; exited "$p"; die "a service exited (logs in $DIR/logs)"; }; done
        [ $n -lt 300 ] || { "$BIN/qtctl" status; die "not every service became ready in 30 s (logs in $DIR/logs)"; }
        sleep 0.1; n=$((n + 1))
    done
}

token() {
    if [ -z "${QT_API_TOKEN:-}" ]; then
        [ -s "$DIR/api-token" ] || (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$DIR/api-token")
        QT_API_TOKEN=$(cat "$DIR/api-token")
    fi
    export QT_API_TOKEN
}

banner() {
    say "" "Quantum Trader is running (mode SHADOW, synthetic feed at speed ${QT_FEED_SPEED:-1}, paper venue)." ""
    say "  dashboard        http://127.0.0.1:$BASE/"
    say "  health           http://127.0.0.1:$BASE/health        trading-engine"
    say "                   http://127.0.0.1:$((BASE + 1))/health        ml-threshold"
    say "                   http://127.0.0.1:$((BASE + 2))/health        rl-decision"
    say "                   http://127.0.0.1:$((BASE + 3))/health        trade-executor"
    say "                   http://127.0.0.1:$((BASE + 4))/health        policy-store"
    say "  all at once      $BIN/qtctl status     (with the QT_*_URL of this run exported when the ports differ)"
    say "  watch a stream   redis-cli -u $REDIS_URL XREAD BLOCK 0 STREAMS qt:signal '\$'"
    say "  switch to PRIMARY (paper orders)"
    say "                   QT_API_TOKEN=\$(cat $DIR/api-token) QT_POLICY_STORE_URL=$QT_POLICY_STORE_URL $BIN/qtctl mode PRIMARY"
    say "  logs             $DIR/logs/"
    say "" "Ctrl-C stops every process."
}

[ -x "$BIN/trading-engine" ] || die "no binaries in $BIN: run make first"
mkdir -p "$DIR/logs" || die "cannot create $DIR"
: >"$DIR/pids"
trap 'stop_all; exit 0' INT TERM
trap 'stop_all' EXIT
token
start_redis
export REDIS_URL
urls
start policy-store $((BASE + 4))
start trading-engine "$BASE" QT_FEED="${QT_FEED:-synthetic}" QT_FEED_SPEED="${QT_FEED_SPEED:-1}"
start ml-threshold $((BASE + 1))
start rl-decision $((BASE + 2))
start trade-executor $((BASE + 3)) QT_VENUE="${QT_VENUE:-paper}"
wait_ready
banner
while :; do
    for p in $PIDS; do
        kill -0 "$p" 2>/dev/null || { exited "$p"; say "make run: a service exited (logs in $DIR/logs); stopping the rest" >&2; exit 1; }
    done
    sleep 1
done
