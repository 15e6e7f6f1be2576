#!/usr/bin/env bash
# install.sh: installs what kiln needs from Debian's packages (skipping what
# is present), then builds the C core and the Python extension in place.
# Run as root (or with sudo available) on Debian 12 or newer.
#   scripts/install.sh                   everything, then build
#   scripts/install.sh --packages G...   only the package groups G (no build):
#                                        core, fuzz, mpi, extras (scripts/test.sh
#                                        asks for core, fuzz and mpi)
set -euo pipefail
cd "$(dirname "$0")/.."

core=(
    gcc g++ make                          # kernels are compiled by the system C compiler
    python3 python3-dev python3-setuptools python3-numpy python3-pytest python3-venv
    python3-pil                           # PIL images in kiln.transform (Jittor's transforms)
    python3-scipy                         # reference values in Jittor's own tests (erfinv)
)
fuzz=(
    clang libclang-rt-dev libomp-dev      # libFuzzer harnesses (tests/fuzz, scripts/fuzz.sh)
)
mpi=(
    openmpi-bin libopenmpi-dev            # mpirun and libmpi (loaded with dlopen) for data parallelism
    openssh-client                        # OpenMPI's launcher insists on an rsh agent, even on one machine
)
extras=(
    python3-sklearn                       # the digits data set for the demo
    libopenblas-dev libopenblas0-pthread  # CPU BLAS (and a fast BLAS for PyTorch in benchmarks)
    libdnnl-dev                           # oneDNN, CPU convolution
    python3-torch python3-torchvision     # side-by-side benchmarks and reference tests
    python3-tqdm                          # progress bars
)

groups=(core fuzz mpi extras)
build=1
if [ "${1:-}" = "--packages" ]; then
    shift
    groups=("$@")
    build=0
fi
packages=()
for g in "${groups[@]}"; do
    case "$g" in
        core) packages+=("${core[@]}") ;;
        fuzz) packages+=("${fuzz[@]}") ;;
        mpi) packages+=("${mpi[@]}") ;;
        extras) packages+=("${extras[@]}") ;;
        *) echo "install.sh: unknown package group '$g' (core, fuzz, mpi, extras)"; exit 2 ;;
    esac
done

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install.sh: installing ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

((build)) || exit 0
make -j"$(nproc)"
/usr/bin/python3 setup.py -q build_ext --inplace
echo "install.sh: kiln is built (C core in build/, Python package in python/kiln)"
