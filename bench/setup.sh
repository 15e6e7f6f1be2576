#!/usr/bin/env bash
# setup.sh: makes build/bench-venv, a virtual environment of Debian's Python
# with today's PyTorch (and torchvision) from PyPI, the anchor bench/ measures
# kiln against. It sees Debian's packages (numpy, kiln's build) and puts the
# PyPI ones first. bench/run_all uses it when present, else Debian's
# python3-torch. The test suite never needs it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=build/bench-venv
if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
"$venv/bin/pip" install -q --upgrade pip
# the CPU is all bench/ measures; PyPI's wheel brings CUDA libraries it does not load here
"$venv/bin/pip" install -q --upgrade --upgrade-strategy only-if-needed torch torchvision
"$venv/bin/python" -c "import torch, torchvision; print('bench/setup.sh: torch', torch.__version__, 'torchvision', torchvision.__version__)"
