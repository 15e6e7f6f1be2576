"""kiln.distributed: MPI collectives as lazy ops with gradients, data-parallel
optimisers, sharded datasets, sync batch norm, and a failing rank ending the
job. The multi-rank tests run scripts with `mpirun -np 2`; without mpirun they
skip, unless KILN_TEST_REQUIRE_MPI=1 (scripts/test.sh sets it), when they fail."""
import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import kiln as jt
from kiln import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MPIRUN = shutil.which("mpirun")


def mpirun(tmp_path, source, n=2, args=(), timeout=300, env=None):
    """Runs source as a script on n ranks (n=0: one plain process, no mpirun),
    with env's variables added; returns the finished process."""
    if n and not MPIRUN:
        if os.environ.get("KILN_TEST_REQUIRE_MPI") == "1":
            pytest.fail("mpirun not found (scripts/install.sh --packages mpi installs OpenMPI)")
        pytest.skip("mpirun not found")
    script = tmp_path / f"script_{n}.py"
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), **(env or {}))
    env.pop("KILN_THREADS", None)
    cmd = [sys.executable, str(script), str(tmp_path), *map(str, args)]
    if n:
        launcher = [MPIRUN, "-np", str(n), "--oversubscribe"]
        if os.geteuid() == 0:
            launcher.append("--allow-run-as-root")
        cmd = launcher + cmd
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def ok(run):
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return run


# ---- a world of one (no mpirun) ----

def test_world_of_one_collectives_are_the_identity_with_gradients():
    assert (jt.rank, jt.world_size, jt.in_mpi, jt.mpi) == (0, 1, False, None)
    x = jt.array(np.array([1.0, -2.0, 3.0]))
    x.requires_grad = True
    for y in (jt.mpi_all_reduce(x, "add"), jt.mpi_all_reduce(x, "mean"), x.mpi_reduce("add", 0),
              x.mpi_broadcast(0), jt.mpi_ops.mpi_all_reduce(x, "max")):
        np.testing.assert_array_equal(y.numpy(), [1.0, -2.0, 3.0])
    g = jt.grad((jt.mpi_all_reduce(x, "mean") * jt.array([1.0, 2.0, 3.0])).sum(), x)
    np.testing.assert_array_equal(g.numpy(), [1.0, 2.0, 3.0])


def test_world_of_one_bucket_packs_and_differentiates():
    a, b = jt.array(np.arange(6.0).reshape(2, 3)), jt.array(np.array([7.0, 8.0]))
    a.requires_grad = b.requires_grad = True
    flat = distributed.mpi_all_reduce_many([a, b], "mean")
    np.testing.assert_array_equal(flat.numpy(), [0, 1, 2, 3, 4, 5, 7, 8])
    w = jt.array(np.arange(1.0, 9.0))
    ga, gb = jt.grad((flat * w).sum(), [a, b])
    np.testing.assert_array_equal(ga.numpy(), np.arange(1.0, 7.0).reshape(2, 3))
    np.testing.assert_array_equal(gb.numpy(), [7.0, 8.0])
    parts = distributed.all_reduce_bucketed([a, b.float32(), a * 2], "add")
    for got, want in zip(parts, (a, b.float32(), a * 2)):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_collective_errors_name_the_problem():
    x = jt.array(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="root 1 is not a rank of this job"):
        jt.mpi_reduce(x, "add", root=1)
    with pytest.raises(ValueError, match="root -1"):
        jt.mpi_broadcast(x, root=-1)
    with pytest.raises(ValueError, match="op must be"):
        jt.mpi_all_reduce(x, "prod")
    with pytest.raises(TypeError, match="mean of int32 across ranks"):
        jt.mpi_all_reduce(jt.array(np.ones(3, np.int32)), "mean")
    with pytest.raises(TypeError, match="float16 has no MPI arithmetic"):
        jt.mpi_all_reduce(x.float16())
    with pytest.raises(TypeError, match="one dtype"):
        distributed.mpi_all_reduce_many([x, x.float64()])
    with pytest.raises(ValueError, match="11 vars"):
        distributed.mpi_all_reduce_many([x] * 11)


@pytest.mark.parametrize("n,bs,world", [(23, 4, 2), (21, 4, 2), (22, 4, 2), (10, 3, 3), (9, 9, 2)])
def test_sharding_gives_every_sample_once_and_equal_batch_counts(monkeypatch, n, bs, world):
    global_batches = [np.arange(n)[i:i + bs] for i in range(0, n, bs)]
    per_rank = []
    for r in range(world):
        monkeypatch.setattr(distributed, "rank", r)
        monkeypatch.setattr(distributed, "world_size", world)
        per_rank.append(distributed.shard_batches(global_batches))
        assert len(per_rank[-1]) == distributed.shared_batch_count(len(global_batches),
                                                                   len(global_batches[-1]))
    assert len({len(b) for b in per_rank}) == 1
    seen = np.concatenate([np.concatenate(b) for b in per_rank])
    np.testing.assert_array_equal(np.sort(seen), np.arange(n))
    assert all(len(batch) > 0 for b in per_rank for batch in b)


def test_sharding_refuses_a_batch_smaller_than_the_world(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", 4)
    with pytest.raises(ValueError, match="cannot be shared by 4 ranks"):
        distributed.shard_batches([np.arange(3)])


def test_save_writes_on_rank_zero_only_unless_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "rank", 1)
    jt.save({"a": jt.ones(2)}, tmp_path / "skipped.pkl")
    assert not (tmp_path / "skipped.pkl").exists()
    jt.save({"a": jt.ones(2)}, tmp_path / "mine.pkl", all_ranks=True)
    assert (tmp_path / "mine.pkl").exists()


# ---- two ranks ----

COLLECTIVES = """
    import ctypes
    import os
    import sys
    import numpy as np
    import kiln as jt
    from kiln import distributed
    jt._C.set_device(sys.argv[2])    # on a device, MPI goes through host copies
    assert jt._C.device() == sys.argv[2]
    r, W = jt.rank, jt.world_size
    assert jt.in_mpi and W == 2 and jt.mpi.world_size() == 2, (jt.in_mpi, W)
    out = {}
    for dt in ("float32", "float64", "int32"):
        base = np.arange(-3, 9).reshape(3, 4).astype(dt)
        x = jt.array(base * (r + 1) + r)
        ops = ("add", "mean", "max", "min") if dt != "int32" else ("add", "max", "min")
        for op in ops:
            out[f"{dt}_all_{op}"] = jt.mpi_all_reduce(x, op).numpy()
        out[f"{dt}_reduce_add"] = jt.mpi_reduce(x, "add", 1).numpy()
        # a temporary input is reduced in its own buffer; a held one is left as it was
        out[f"{dt}_temporary"] = jt.mpi_all_reduce(x * 2, "add").numpy()
        held = x * 2
        held.sync()
        out[f"{dt}_held"] = jt.mpi_all_reduce(held, "add").numpy()
        out[f"{dt}_held_after"] = held.numpy()
        out[f"{dt}_bcast"] = jt.mpi_broadcast(x, 1).numpy()
        if dt == "int32":
            continue
        x.requires_grad = True
        w = jt.array(np.full((3, 4), r + 1.0, dtype=dt))
        out[f"{dt}_grad_all_add"] = jt.grad((jt.mpi_all_reduce(x, "add") * w).sum(), x).numpy()
        out[f"{dt}_grad_all_mean"] = jt.grad((jt.mpi_all_reduce(x, "mean") * w).sum(), x).numpy()
        out[f"{dt}_grad_reduce"] = jt.grad((jt.mpi_reduce(x, "add", 1) * w).sum(), x).numpy()
        out[f"{dt}_grad_bcast"] = jt.grad((jt.mpi_broadcast(x, 1) * w).sum(), x).numpy()
        flat = distributed.mpi_all_reduce_many([x, x[0] * 2], "mean")
        out[f"{dt}_bucket"] = flat.numpy()
        out[f"{dt}_grad_bucket"] = jt.grad((flat * jt.array(np.arange(16).astype(dt))).sum(), x).numpy()
        out[f"{dt}_dtype"] = np.array(str(jt.mpi_all_reduce(x).dtype))
    host = np.full(5, r + 1.0)
    jt.distributed._C.mpi_all_reduce_host(host, "float64")
    out["host"] = host
    if os.environ.get("KILN_NCCL", "0") != "0":
        out["nccl_calls"] = ctypes.CDLL(os.environ["KILN_NCCL"]).fake_nccl_calls()
    np.savez(f"{sys.argv[1]}/rank{r}.npz", **out)
"""


def fake_nccl(tmp_path):
    """tests/python/fake_nccl.c built: NCCL's calls made with MPI's."""
    lib = tmp_path / "libfake_nccl.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(lib),
                    os.path.join(os.path.dirname(__file__), "fake_nccl.c"), "-ldl"], check=True)
    return str(lib)


NCCL_ON_ONE_RANK = """
    import ctypes
    import os
    import sys
    import numpy as np
    import kiln as jt
    jt._C.set_device("cuda-emulate")
    lib = os.environ["KILN_NCCL"]
    if jt.rank == 1:
        os.environ["KILN_NCCL"] = "0"    # read at the first collective
    x = jt.array(np.arange(4.0) + jt.rank)
    got = jt.mpi_all_reduce(x, "add").numpy()
    assert np.array_equal(got, 2 * np.arange(4.0) + 1), got
    assert ctypes.CDLL(lib).fake_nccl_calls() == 0
"""


def test_ranks_use_nccl_only_when_all_have_it(tmp_path):
    """One rank without NCCL: the job keeps MPI, rather than hanging with one
    rank in NCCL and the other in MPI."""
    ok(mpirun(tmp_path, NCCL_ON_ONE_RANK, env={"KILN_NCCL": fake_nccl(tmp_path)}, timeout=60))


@pytest.mark.parametrize("device", ["cpu", "cuda-emulate", "cuda-emulate+nccl"])
def test_collectives_values_and_gradients_on_two_ranks(tmp_path, device):
    """On the CPU; on a device whose memory MPI cannot read (the CUDA
    emulator: its data goes through host memory); and on that device with
    NCCL (a stand-in: fake_nccl.c), whose calls take the device's memory."""
    env = {"KILN_NCCL": fake_nccl(tmp_path)} if device.endswith("+nccl") else {"KILN_NCCL": "0"}
    ok(mpirun(tmp_path, COLLECTIVES, args=(device.split("+")[0],), env=env))
    got = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    if device.endswith("+nccl"):   # every collective but the host array's went through it
        assert all(int(g["nccl_calls"]) >= 30 for g in got), [int(g["nccl_calls"]) for g in got]
    for dt in ("float32", "float64", "int32"):
        base = np.arange(-3, 9).reshape(3, 4).astype(np.float64)
        xs = [base * (r + 1) + r for r in range(2)]
        want = {"add": xs[0] + xs[1], "mean": (xs[0] + xs[1]) / 2, "max": np.maximum(*xs),
                "min": np.minimum(*xs)}
        for op, w in want.items():
            if dt == "int32" and op == "mean":
                continue
            for r in range(2):
                np.testing.assert_allclose(got[r][f"{dt}_all_{op}"], w, rtol=1e-6)
                assert got[r][f"{dt}_all_{op}"].dtype == np.dtype(dt)
        np.testing.assert_array_equal(got[1][f"{dt}_reduce_add"], xs[0] + xs[1])
        for r in range(2):
            np.testing.assert_array_equal(got[r][f"{dt}_temporary"], 2 * (xs[0] + xs[1]))
            np.testing.assert_array_equal(got[r][f"{dt}_held"], 2 * (xs[0] + xs[1]))
            np.testing.assert_array_equal(got[r][f"{dt}_held_after"], 2 * xs[r])
        np.testing.assert_array_equal(got[0][f"{dt}_reduce_add"], np.zeros((3, 4)))
        for r in range(2):
            np.testing.assert_array_equal(got[r][f"{dt}_bcast"], xs[1])
        if dt == "int32":
            continue
        ones = np.ones((3, 4))
        for r in range(2):
            # w_r = r + 1: d/dx_r sum_j w_j * sum_k x_k = w_0 + w_1 = 3
            np.testing.assert_allclose(got[r][f"{dt}_grad_all_add"], 3 * ones)
            np.testing.assert_allclose(got[r][f"{dt}_grad_all_mean"], 1.5 * ones)
            # only the root's output depends on x: its weight, 2, reaches every rank
            np.testing.assert_allclose(got[r][f"{dt}_grad_reduce"], 2 * ones)
            assert str(got[r][f"{dt}_dtype"]) == dt
            flat = np.concatenate([(xs[0] + xs[1]).ravel() / 2, (xs[0][0] + xs[1][0])])
            np.testing.assert_allclose(got[r][f"{dt}_bucket"], flat, rtol=1e-6)
            # bucket weights: 0..11 on x, 12..15 on 2 * x[0]; the same on both ranks
            g = np.arange(12.0).reshape(3, 4)
            g[0] += 2 * np.arange(12.0, 16.0)
            np.testing.assert_allclose(got[r][f"{dt}_grad_bucket"], g, rtol=1e-6)
        # broadcast from 1: every rank's weight summed at the root, zeros elsewhere
        np.testing.assert_allclose(got[1][f"{dt}_grad_bcast"], 3 * ones)
        np.testing.assert_allclose(got[0][f"{dt}_grad_bcast"], 0 * ones)
    for r in range(2):
        np.testing.assert_array_equal(got[r]["host"], np.full(5, 3.0))


RESNET = """
    import sys
    import numpy as np
    import kiln as jt
    from kiln import nn

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

        def execute(self, x):
            y = nn.relu(self.bn1(self.conv1(x)))
            return nn.relu(x + self.bn2(self.conv2(y)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(8), nn.ReLU())
            self.block = Block(8)
            self.fc = nn.Linear(8, 10)

        def execute(self, x):
            return self.fc(self.block(self.stem(x)).mean(dims=(2, 3)))

    jt.seed(jt.rank)            # ranks start apart: the optimiser broadcasts rank 0's
    model = Net()
    optimizer = jt.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    data = np.random.RandomState(0)
    B, W, r = 8, jt.world_size, jt.rank
    for step in range(5):
        x = data.randn(B, 3, 8, 8).astype(np.float32)
        y = data.randint(0, 10, B)
        part = slice(r * B // W, (r + 1) * B // W)
        loss = nn.cross_entropy_loss(model(jt.array(x[part])), jt.array(y[part]))
        optimizer.step(loss)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    np.savez(f"{sys.argv[1]}/model_{W}_{r}.npz", **state)
"""


def test_data_parallel_training_matches_one_process_on_the_whole_batch(tmp_path):
    ok(mpirun(tmp_path, RESNET, n=2))
    ok(mpirun(tmp_path, RESNET, n=0))
    one = np.load(tmp_path / "model_1_0.npz")
    ranks = [np.load(tmp_path / f"model_2_{r}.npz") for r in range(2)]
    assert len(one.files) > 10
    for k in one.files:
        np.testing.assert_array_equal(ranks[0][k], ranks[1][k], err_msg=k)
        np.testing.assert_allclose(ranks[0][k], one[k], rtol=1e-5, atol=1e-5, err_msg=k)
    # the parameters did move: the comparison is not of initial values
    assert ranks[0]["stem.1.num_batches_tracked"] == 5


LOADING = """
    import sys
    import numpy as np
    import kiln as jt
    from kiln.dataset import DataLoader, Dataset

    class Items(Dataset):
        def __init__(self, n):
            super().__init__()
            self.n = n
        def __getitem__(self, i):
            return np.int64(i)
        def __len__(self):
            return self.n

    np.random.seed(100 + jt.rank)   # the shuffle must still agree across ranks
    out = {}
    for n in (23, 21):
        ds = Items(n).set_attrs(batch_size=4, shuffle=True)
        for epoch in range(2):
            batches = [b.numpy() for b in ds]
            assert len(batches) == ds.num_batches(), (len(batches), ds.num_batches())
            out[f"ds{n}_{epoch}"] = np.concatenate(batches)
            out[f"ds{n}_{epoch}_count"] = np.array(len(batches))
        loader = DataLoader(Items(n), batch_size=4, shuffle=True)
        batches = [b.numpy() for b in loader]
        assert len(batches) == len(loader)
        out[f"dl{n}"] = np.concatenate(batches)
    np.savez(f"{sys.argv[1]}/load{jt.rank}.npz", **out)
"""


def test_sharded_loading_sees_every_index_once_per_epoch(tmp_path):
    ok(mpirun(tmp_path, LOADING))
    got = [np.load(tmp_path / f"load{r}.npz") for r in range(2)]
    for n in (23, 21):
        for key in (f"ds{n}_0", f"ds{n}_1", f"dl{n}"):
            both = np.concatenate([got[0][key], got[1][key]])
            np.testing.assert_array_equal(np.sort(both), np.arange(n), err_msg=key)
            assert abs(len(got[0][key]) - len(got[1][key])) <= 2
        assert got[0][f"ds{n}_0_count"] == got[1][f"ds{n}_0_count"]
        # a new shuffle each epoch
        assert not np.array_equal(got[0][f"ds{n}_0"], got[0][f"ds{n}_1"])


FAILING = """
    import sys, time
    import numpy as np
    import kiln as jt
    print("started", jt.rank, flush=True)
    x = jt.array(np.ones(1000, np.float32))
    for step in range(1000):
        if jt.rank == 1 and step == 3:
            raise ValueError("a bad batch at step 3")
        x = jt.mpi_all_reduce(x, "mean") * 1.0
        x.sync()
    print("rank", jt.rank, "finished", flush=True)
"""


def test_a_failing_rank_ends_the_job_naming_the_rank(tmp_path):
    start = time.perf_counter()
    run = mpirun(tmp_path, FAILING, timeout=60)
    elapsed = time.perf_counter() - start
    assert run.returncode != 0
    assert "kiln: rank 1 of 2 failed" in run.stderr, run.stderr
    assert "ValueError: a bad batch at step 3" in run.stderr
    assert "finished" not in run.stdout
    assert elapsed < 10, f"the job took {elapsed:.1f} s to end"


def test_digits_demo_on_two_ranks_matches_one_process(tmp_path):
    pytest.importorskip("sklearn")
    source = f"""
        import importlib.util, sys
        import kiln as jt
        spec = importlib.util.spec_from_file_location("demo", {os.path.join(ROOT, "examples", "digits_cnn.py")!r})
        demo = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(demo)
        accuracy = demo.main(epochs=3, verbose=False)
        with open(f"{{sys.argv[1]}}/accuracy_{{jt.world_size}}_{{jt.rank}}", "w") as f:
            f.write(repr(accuracy))
    """
    ok(mpirun(tmp_path, source, n=2))
    ok(mpirun(tmp_path, source, n=0))
    acc = [float((tmp_path / f"accuracy_2_{r}").read_text()) for r in range(2)]
    single = float((tmp_path / "accuracy_1_0").read_text())
    assert acc[0] == acc[1]
    assert single >= 0.85 and abs(acc[0] - single) <= 0.01, (acc, single)
