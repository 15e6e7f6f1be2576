#!/usr/bin/env bash
# fuzz.sh [SECONDS]: builds and runs kiln's fuzzers (tests/fuzz/), each for
# SECONDS (default 60), from a copy of its seed corpus (tests/fuzz/seeds/):
#   fuzz_expr        index expressions and kernel generation (libFuzzer, C)
#   fuzz_api         sequences of public C API calls (libFuzzer, C)
#   fuzz_checkpoint  jt.load on kiln and PyTorch checkpoints (atheris, Python)
# The C harnesses are built with clang -fsanitize=fuzzer,address,undefined;
# atheris comes from PyPI into build/fuzz/venv (Debian's Python, its numpy).
# Exits nonzero on any finding; crashing inputs are kept in build/fuzz/findings.
# FUZZ_RUNS=N runs each N executions instead of for a time (the long runs in
# docs/reliability.md); FUZZ_ONLY=name runs one.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
out=build/fuzz
mkdir -p "$out/findings"
export KILN_CACHE_DIR="$PWD/$out/kernel-cache"
CLANG="${CLANG:-clang}"
command -v "$CLANG" >/dev/null || { echo "fuzz.sh: clang is needed (apt-get install clang libclang-rt-dev libomp-dev)"; exit 1; }

srcs=$(ls src/*/*.c src/*/*/*.c)
flags=(-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -fopenmp -Iinclude -Isrc -w)
for h in fuzz_expr fuzz_api; do
    if [ ! -x "$out/$h" ] || [ -n "$(find src include tests/fuzz/$h.c -newer "$out/$h" | head -1)" ]; then
        echo "fuzz.sh: building $h"
        "$CLANG" "${flags[@]}" tests/fuzz/$h.c $srcs -o "$out/$h" -ldl -lm -lpthread
    fi
done
if [ ! -x "$out/venv/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$out/venv"
    "$out/venv/bin/pip" install -q atheris
fi
/usr/bin/python3 setup.py -q build_ext --inplace

limit=(-max_total_time="$secs")
[ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")
common=(-rss_limit_mb=4096 -timeout=60 -print_final_stats=1 -artifact_prefix="$out/findings/")
status=0
run() {
    local name=$1; shift
    [ -n "${FUZZ_ONLY:-}" ] && [ "$FUZZ_ONLY" != "$name" ] && return 0
    local corpus="$out/corpus-$name"
    mkdir -p "$corpus"
    echo "fuzz.sh: $name for ${FUZZ_RUNS:-$secs s} ${FUZZ_RUNS:+runs}"
    if ! "$@" "${common[@]}" "${limit[@]}" "$corpus" "tests/fuzz/seeds/$name" > "$out/$name.log" 2>&1; then
        echo "fuzz.sh: $name FOUND A PROBLEM; its log: $out/$name.log"
        tail -40 "$out/$name.log"
        status=1
    fi
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^Done " "$out/$name.log" | sed "s/^/    /"
}
ASAN_OPTIONS=detect_leaks=0 run fuzz_expr "$out/fuzz_expr"
ASAN_OPTIONS=detect_leaks=0 run fuzz_api "$out/fuzz_api"
PYTHONPATH=python run fuzz_checkpoint "$out/venv/bin/python" tests/fuzz/fuzz_checkpoint.py
exit $status
