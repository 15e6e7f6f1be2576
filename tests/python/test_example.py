"""examples/two_layer.py, Jittor's introductory network, trains: the loss falls by 10x or more."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_two_layer_example_trains():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "python") + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "two_layer.py"), "600"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    losses = [float(v) for v in re.findall(r"loss ([0-9.]+)", run.stdout)]
    assert len(losses) >= 5
    m = re.search(r"loss fell from ([0-9.]+) to ([0-9.]+)", run.stdout)
    first, last = float(m.group(1)), float(m.group(2))
    assert first / last >= 10, run.stdout
    assert losses[0] / losses[-1] >= 10, run.stdout
