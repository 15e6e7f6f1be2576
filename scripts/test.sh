#!/usr/bin/env bash
# test.sh: builds kiln and runs every test: the C tests, the C tests again
# under AddressSanitizer and UBSan, the Python suite (with every kernel also
# compiled for CUDA where NVRTC is installed), Jittor's own test suite
# (its pass count may not fall), and the fuzzers for a minute each
# (FUZZ_SECONDS; 0 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds="${FUZZ_SECONDS:-60}"
# the compilers and tools the tests need (a no-op when they are there)
scripts/install.sh --packages core fuzz mpi
# the two-rank tests (tests/python/test_distributed.py) must run, not skip
export KILN_TEST_REQUIRE_MPI=1
export KILN_CACHE_DIR="${KILN_CACHE_DIR:-$PWD/build/kernel-cache}"
# every plan-cache hit is checked against freshly generated code
export KILN_CHECK_PLANS=1
# oneDNN's tests skip where it is not installed; where it is, it must load
if dpkg-query -W -f='${Status}' libdnnl2 2>/dev/null | grep -q "install ok installed"; then
    export KILN_TEST_REQUIRE_DNNL=1
fi
jobs=$(nproc)

make -j"$jobs"
make -j"$jobs" test-c
make -j"$jobs" asan
/usr/bin/python3 setup.py -q build_ext --inplace
# every kernel the suite makes is also compiled for CUDA (NVRTC to PTX, no GPU
# needed) where NVRTC is installed: a kernel the CUDA renderer gets wrong fails here
if why=$(PYTHONPATH=python /usr/bin/python3 -c "from kiln import _C; _C.set_compile_check('cuda')" 2>&1); then
    export KILN_COMPILE_CHECK=cuda
else
    echo "test.sh: CUDA kernels are not compile-checked: ${why##*$'\n'}"
fi
PYTHONPATH=python /usr/bin/python3 -m pytest -q tests/python
unset KILN_COMPILE_CHECK
# Jittor's own tests: the pass count may not fall (tests/jittor_suite_floor.txt)
scripts/jittor_suite.sh
if [ "$fuzz_seconds" != 0 ]; then
    scripts/fuzz.sh "$fuzz_seconds"
fi
