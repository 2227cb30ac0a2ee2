#!/bin/sh
# run.sh TEST... — run each test binary, show its output, sum the counts and
# print the closing line "N passed, N failed". Exit 1 if anything failed.
# QT_TEST_WRAPPER (e.g. valgrind ...) prefixes every run; QT_TEST_TIMEOUT
# (seconds, default 900) bounds each binary.
set -u
passed=0; failed=0; broken=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "$@"; do
    echo "== $t"
    timeout "${QT_TEST_TIMEOUT:-900}" ${QT_TEST_WRAPPER:-} "$t" >"$log" 2>&1
    rc=$?
    cat "$log"
    line=$(grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "!! $t exited $rc without a summary line"
        failed=$((failed + 1)); broken="$broken $t"; continue
    fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "!! $t exited $rc"; failed=$((failed + 1)); broken="$broken $t"
    fi
done
[ -n "$broken" ] && echo "broken:$broken"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
