"""kiln from several Python threads (kiln/_C/threads.c): a sync runs with the
GIL released so other threads go on; threads that call kiln meanwhile wait
and get right results; grad mode is per thread; Ctrl-C during a long sync
raises KeyboardInterrupt between kernels and leaves kiln usable."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import kiln as jt

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _long_chain(steps, n=1 << 20):
    """A sync of `steps` kernels: each step needs the sum of the one before."""
    x = jt.ones((n,))
    for _ in range(steps):
        x = x * 0.5 + x.mean() * 0.5
    return x.sum()


def test_other_threads_run_while_one_syncs():
    _long_chain(2).item()                          # compile outside the timing
    ticks = [0]
    done = threading.Event()

    def python_work():
        while not done.is_set():
            ticks[0] += 1

    t = threading.Thread(target=python_work)
    t.start()
    try:
        start = time.perf_counter()
        total = _long_chain(300).item()
        elapsed = time.perf_counter() - start
    finally:
        done.set()
        t.join()
    assert total == pytest.approx(1 << 20)
    # with the GIL held through the sync, the other thread would get only a
    # few switch intervals (5 ms each); released, it counts all along
    assert ticks[0] > 1000 * max(elapsed, 0.05), (ticks[0], elapsed)


def test_threads_using_kiln_at_once_get_right_results():
    errors, results = [], {}

    def work(k):
        try:
            rng = np.random.default_rng(k)
            for it in range(30):
                a = rng.standard_normal((64, 32)).astype("float32")
                x = jt.array(a)
                y = ((x * (k + 1)).exp().sum(1) + x.max()).numpy()
                want = np.exp(a * (k + 1)).sum(1) + a.max()
                np.testing.assert_allclose(y, want, rtol=1e-4)
                del x                               # freed while another thread may sync
            results[k] = True
        except BaseException as e:                 # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 4


def test_grad_mode_is_per_thread():
    seen = {}

    def build():
        seen["grad_enabled"] = jt.is_grad_enabled()
        lin = jt.nn.Linear(3, 2)
        seen["params"] = len(lin.parameters())
        w = jt.random((3,))
        w.requires_grad = True
        seen["grad"] = jt.grad((w * w).sum(), w).numpy()

    with jt.no_grad():
        t = threading.Thread(target=build)
        t.start()
        t.join()
        assert not jt.is_grad_enabled()
    assert jt.is_grad_enabled()
    assert seen["grad_enabled"] and seen["params"] == 2
    assert seen["grad"].shape == (3,)


def test_no_grad_instance_nests():
    ng = jt.no_grad()
    with ng:
        with ng:
            assert not jt.is_grad_enabled()
        assert not jt.is_grad_enabled()
    assert jt.is_grad_enabled()


CTRL_C = textwrap.dedent("""
    import sys, time
    import kiln as jt

    def chain(steps, n=1 << 21):
        x = jt.ones((n,))
        for _ in range(steps):
            x = x * 0.5 + x.mean() * 0.5
        return x.sum()

    chain(2).item()                 # compile first
    t0 = time.perf_counter()
    chain(300).item()
    per_step = (time.perf_counter() - t0) / 300
    y = chain(int(30 / per_step))   # built, not run: half a minute of kernels
    print("ready", flush=True)
    start = time.perf_counter()
    try:
        y.item()
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted after %.2f s" % (time.perf_counter() - start), flush=True)
    # kiln still works, and the interrupted graph can be freed
    del y
    print("after", chain(3).item(), flush=True)
""")


def test_ctrl_c_interrupts_a_long_sync_between_kernels(tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        sent = time.perf_counter()
        p.send_signal(signal.SIGINT)
        line = p.stdout.readline()
        reaction = time.perf_counter() - sent
        # not communicate(): it reads the pipe past what readline() already
        # buffered, and loses "after" when both lines came in one read
        p.wait(timeout=120)
        out, err = p.stdout.read(), p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
    assert line.startswith("interrupted"), line + out + err
    assert reaction < 5, f"KeyboardInterrupt came {reaction:.1f} s after SIGINT"
    assert "after" in out and p.returncode == 0, out + err


def test_fork_during_another_threads_sync_gives_a_working_child():
    _long_chain(2).item()
    y = _long_chain(2000)
    t = threading.Thread(target=y.item)
    t.start()
    time.sleep(0.2)                               # the sync is running in t
    pid = os.fork()                               # waits for it (os.register_at_fork)
    if pid == 0:
        try:
            ok = jt.array([1.0, 2.0]).sum().item() == 3.0 and y.is_computed
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    t.join()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the forked child hung")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
