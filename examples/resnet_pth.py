"""Runs a torchvision ResNet-18 checkpoint with kiln, without torch.

    python examples/resnet_pth.py resnet18-f37072fd.pth     # a torch.save'd state_dict
    python examples/resnet_pth.py                           # makes one with torchvision

The .pth file (a torchvision resnet18 state_dict, e.g. the official
IMAGENET1K_V1 weights downloaded elsewhere) is read by kiln's own reader, the
state_dict loads unchanged into kiln.models.resnet18, and the top-5 classes of
a random image are printed. Without a path, torchvision (if installed) writes
a randomly initialised resnet18 to a temporary file first; torch is used only
for that and only in a child process, so kiln never needs it."""
import argparse
import ast
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import kiln as jt  # noqa: E402
from kiln import models  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)


def load_checkpoint(path):
    """A state dict from path: jt.load (kiln's own files, and .pth where it
    reads them), else kiln's torch-free .pth reader."""
    try:
        state = jt.load(path)
    except Exception:
        from kiln.io import pth as _pth
        if not _pth.is_pth(path):
            raise
        state = _pth.load_pth(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"],
                                                                       dict):
        state = state["state_dict"]          # a training checkpoint wrapping the weights
    return state


def make_checkpoint(path):
    """Writes torchvision's resnet18 (random weights) to path, in a child process."""
    code = ("import sys, torch, torchvision; torch.manual_seed(0); "
            "torch.save(torchvision.models.resnet18().state_dict(), sys.argv[1])")
    r = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
    if r.returncode != 0:
        last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
        sys.exit(f"no checkpoint given and torchvision is not available to make one: {last}")


def imagenet_categories():
    """The 1000 ImageNet class names from an installed torchvision's source,
    read as text (importing torchvision would import torch); None if absent."""
    try:
        spec = importlib.util.find_spec("torchvision")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    meta = os.path.join(list(spec.submodule_search_locations)[0], "models", "_meta.py")
    try:
        tree = ast.parse(open(meta).read())
    except OSError:
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_IMAGENET_CATEGORIES"
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", nargs="?", help="a torchvision resnet18 .pth state_dict")
    ap.add_argument("--size", type=int, default=224, help="image height and width")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random image")
    args = ap.parse_args()

    tmp = None
    path = args.checkpoint
    if path is None:
        tmp = tempfile.TemporaryDirectory()
        path = os.path.join(tmp.name, "resnet18_random.pth")
        make_checkpoint(path)
        print(f"made {path} with torchvision (random weights)")

    t = time.time()
    model = models.resnet18()
    model.load_state_dict(load_checkpoint(path))
    model.eval()
    print(f"loaded {path} into kiln.models.resnet18 in {time.time() - t:.2f}s")

    image = np.random.default_rng(args.seed).random((1, 3, args.size, args.size),
                                                    dtype=np.float32)
    x = jt.array((image - MEAN) / STD)
    t = time.time()
    probs = jt.softmax(model(x), 1).numpy()[0]
    print(f"forward ({args.size}x{args.size}) in {time.time() - t:.2f}s; top-5 classes:")
    names = imagenet_categories()
    for rank, k in enumerate(np.argsort(-probs)[:5], 1):
        label = names[k] if names and k < len(names) else ""
        print(f"  {rank}. class {k:4d}  p={probs[k]:.4f}  {label}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
