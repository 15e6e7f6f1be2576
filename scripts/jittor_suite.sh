#!/usr/bin/env bash
# jittor_suite.sh: runs Jittor's own test suite against this checkout (the
# runner maps `jittor` to kiln by name only) and fails when fewer tests pass
# than tests/jittor_suite_floor.txt records, or a test crashes. Raise the
# floor as kiln improves (scripts/jittor_suite.sh --raise writes the count).
# The suite lives outside the repository: $KILN_JITTOR_TESTS, else
# ../shared/jittor-tests next to the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
suite="${KILN_JITTOR_TESTS:-../shared/jittor-tests}"
[ -f "$suite/run.py" ] || suite=/work/shared/jittor-tests
if [ ! -f "$suite/run.py" ]; then
    echo "jittor_suite: Jittor's test suite not found (set KILN_JITTOR_TESTS); skipped"
    exit 0
fi
floor_file=tests/jittor_suite_floor.txt
floor=$(tr -cd '0-9' < "$floor_file")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 "$suite/run.py" . --out "$out" | tail -n 1
read -r passed crashes < <(/usr/bin/python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["totals"]
print(t["passed"], t.get("crashes", 0))' "$out/summary.json")
if [ "${1:-}" = "--raise" ] && [ "$passed" -gt "$floor" ]; then
    echo "$passed" > "$floor_file"
    echo "jittor_suite: floor raised from $floor to $passed"
fi
if [ "$crashes" != 0 ]; then
    echo "jittor_suite: $crashes tests crashed (see the runner's log)"
    exit 1
fi
if [ "$passed" -lt "$floor" ]; then
    echo "jittor_suite: $passed tests passed, fewer than the floor of $floor ($floor_file)"
    exit 1
fi
echo "jittor_suite: $passed passed (floor $floor)"
