#!/usr/bin/env bash
# gpu_check.sh: the whole GPU check in one go, on a machine with an NVIDIA
# GPU and CUDA 13 but nothing of kiln's installed (the project's device
# machine): builds kiln, runs the C backend suite (which includes the GPU),
# NCCL's smoke test (a world of one), the GPU's own tests (jt.code's
# cuda_src among them), the whole Python suite with every var on the GPU
# (KILN_TEST_DEVICE=cuda), then the GPU benchmarks. Logs go to $OUT (or
# build/gpu-check). Each stage runs even when one before it failed; the
# exit status says whether all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-build/gpu-check}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export KILN_CACHE_DIR="${KILN_CACHE_DIR:-$PWD/build/kernel-cache}"
export PYTHONUNBUFFERED=1
status=0
stage() { # name, command...
    local name=$1
    shift
    echo "== $name"
    local t0=$SECONDS
    "$@" > "$out/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$out/$name.log"
    echo "== $name: exit $rc in $((SECONDS - t0)) s"
    [ $rc = 0 ] || status=1
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" 2>&1 && cat "$out/gpu.txt"
stage build bash -c "make -j\$(nproc) build/tests/test_backend build/tests/test_cuda_compile build/tests/test_nccl && $py setup.py -q build_ext --inplace"
stage c-backend ./build/tests/test_backend
stage c-cuda ./build/tests/test_cuda_compile
stage c-nccl ./build/tests/test_nccl
stage gpu-tests env PYTHONPATH=python timeout 300 "$py" -m pytest -q -x tests/python/test_cuda_device.py tests/python/test_code_cuda.py
stage gpu-suite env PYTHONPATH=python KILN_TEST_DEVICE=cuda timeout 360 "$py" -m pytest -q -p no:cacheprovider tests/python
stage gpu-bench env PYTHONPATH=python timeout 240 "$py" bench/gpu.py
exit $status
