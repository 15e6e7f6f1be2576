"""kiln.dataset (Jittor's Dataset with set_attrs, PyTorch's DataLoader),
worker processes, default collate, the progress bar, and kiln.transform."""
import io
import os

import numpy as np
import pytest

import kiln as jt
from kiln import transform
from kiln.dataset import (BatchSampler, DataLoader, Dataset, RandomSampler, TensorDataset,
                          default_collate, get_worker_info, random_split)
from kiln._progress import _Plain, progress


class Squares(Dataset):
    """Jittor style: total_len through set_attrs, no __len__."""

    def __init__(self, n=50):
        super().__init__()
        self.set_attrs(total_len=n)

    def __getitem__(self, k):
        return np.full((2,), k, np.float32), k * k


class Mapping(Dataset):
    """PyTorch style: __len__ is the number of samples; samples are dicts."""

    def __init__(self, n=23):
        super().__init__()
        self.n = n

    def __getitem__(self, k):
        return {"x": np.arange(3, dtype=np.float32) + k, "label": k % 3, "name": f"s{k}"}

    def __len__(self):
        return self.n


class Pid(Dataset):
    def __getitem__(self, k):
        info = get_worker_info()
        return k, os.getpid(), -1 if info is None else info.id, np.random.randint(1 << 30)

    def __len__(self):
        return 40


class Failing(Dataset):
    def __getitem__(self, k):
        if k == 7:
            raise KeyError("sample seven is broken")
        return k

    def __len__(self):
        return 12


def test_jittor_dataset_batches():
    d = Squares().set_attrs(batch_size=16)
    assert len(d) == 4                              # batches, as Jittor
    batches = list(d)
    assert [len(b[1]) for b in batches] == [16, 16, 16, 2]
    x, y = batches[0]
    assert isinstance(x, jt.Var) and x.shape == (16, 2) and x.dtype == "float32"
    assert y.dtype == "int64" and y.numpy().tolist() == [k * k for k in range(16)]
    d.set_attrs(drop_last=True)
    assert len(d) == 3 and len(list(d)) == 3


def test_shuffle_is_a_permutation_and_seeded():
    d = Squares(30).set_attrs(batch_size=7, shuffle=True)
    jt.seed(4)
    a = np.concatenate([y.numpy() for _, y in d])
    jt.seed(4)
    b = np.concatenate([y.numpy() for _, y in d])
    np.testing.assert_array_equal(a, b)
    assert sorted(a.tolist()) == [k * k for k in range(30)]
    assert a.tolist() != sorted(a.tolist())


def test_dataset_with_len_and_dict_samples():
    d = Mapping().set_attrs(batch_size=10)
    assert len(d) == 23                             # __len__ given: the samples
    batches = list(d)
    assert len(batches) == 3
    b = batches[2]
    assert b["x"].shape == (3, 3) and b["label"].numpy().tolist() == [20 % 3, 21 % 3, 22 % 3]
    assert b["name"] == ["s20", "s21", "s22"]
    d.set_attrs(keep_numpy_array=True)
    assert isinstance(next(iter(d))["x"], np.ndarray)
    with pytest.raises(TypeError, match="unknown attribute"):
        d.set_attrs(batchsize=3)


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_dataloader_order_and_workers(workers):
    dl = DataLoader(Mapping(), batch_size=4, num_workers=workers)
    assert len(dl) == 6
    labels = np.concatenate([b["label"].numpy() for b in dl])
    assert labels.tolist() == [k % 3 for k in range(23)]
    dl = DataLoader(Mapping(), batch_size=4, shuffle=True, drop_last=True, num_workers=workers)
    xs = np.concatenate([b["x"].numpy()[:, 0] for b in dl])
    assert len(xs) == 20 and len(set(xs.tolist())) == 20


def test_workers_are_processes_and_seeded_differently():
    rows = [b for b in DataLoader(Pid(), batch_size=5, num_workers=2)]
    idx = np.concatenate([r[0].numpy() for r in rows])
    assert idx.tolist() == list(range(40))
    pids = set(np.concatenate([r[1].numpy() for r in rows]).tolist())
    ids = set(np.concatenate([r[2].numpy() for r in rows]).tolist())
    assert os.getpid() not in pids and len(pids) == 2 and ids == {0, 1}
    draws = np.concatenate([r[3].numpy() for r in rows])
    assert len(set(draws.tolist())) > 35           # workers do not repeat each other


def test_jittor_dataset_with_workers():
    d = Squares(37).set_attrs(batch_size=8, num_workers=2, shuffle=True)
    ys = np.concatenate([y.numpy() for _, y in d])
    assert sorted(ys.tolist()) == [k * k for k in range(37)]


@pytest.mark.parametrize("workers", [0, 2])
def test_worker_errors_name_the_sample(workers):
    dl = DataLoader(Failing(), batch_size=4, num_workers=workers)
    with pytest.raises((RuntimeError, KeyError), match="sample seven is broken"):
        list(dl)


def test_early_break_shuts_workers_down():
    dl = DataLoader(Pid(), batch_size=2, num_workers=2)
    for i, _ in enumerate(dl):
        if i == 1:
            break
    rows = list(DataLoader(Pid(), batch_size=20, num_workers=2))
    assert len(rows) == 2


def test_samplers_collate_split_tensor_dataset():
    td = TensorDataset(np.arange(10), np.arange(10) * 2.0)
    assert len(td) == 10 and td[3] == (3, 6.0)
    dl = DataLoader(td, batch_sampler=BatchSampler(RandomSampler(td), 3, False))
    got = sorted(np.concatenate([b[0].numpy() for b in dl]).tolist())
    assert got == list(range(10))
    dl = DataLoader(td, batch_size=None)
    assert len(dl) == 10
    a, b = random_split(td, [7, 3], seed=0)
    assert len(a) == 7 and len(b) == 3
    assert sorted([a[i][0] for i in range(7)] + [b[i][0] for i in range(3)]) == list(range(10))
    c = default_collate([(1, 2.5, np.zeros(2)), (3, 4.5, np.ones(2))])
    assert c[0].dtype == np.int64 and c[1].dtype == np.float32 and c[2].shape == (2, 2)


def test_progress_bar():
    assert progress([1, 2, 3], enabled=False) == [1, 2, 3]
    buf = io.StringIO()
    bar = _Plain(range(5), 5, "train", stream=buf, min_interval=0)
    assert list(bar) == list(range(5))
    out = buf.getvalue()
    assert "train: 5/5" in out and "it/s" in out
    wrapped = progress(range(3), enabled=True)
    assert list(wrapped) == [0, 1, 2]             # tqdm or the plain bar
    os.environ["KILN_PROGRESS"] = "0"
    try:
        d = Squares(10).set_attrs(batch_size=2)
        assert len(list(d)) == 5
    finally:
        del os.environ["KILN_PROGRESS"]


def test_transforms():
    np.random.seed(0)
    img = (np.arange(4 * 6 * 3) % 256).astype(np.uint8).reshape(4, 6, 3)
    t = transform.ToTensor()(img)
    assert t.shape == (3, 4, 6) and t.dtype == np.float32
    np.testing.assert_allclose(t[1, 2, 3], img[2, 3, 1] / 255.0, rtol=1e-6)
    n = transform.Normalize([0.5, 0.5, 0.5], [0.5, 0.25, 0.5])(t)
    np.testing.assert_allclose(n[1], (t[1] - 0.5) / 0.25, rtol=1e-6)
    assert transform.RandomCrop(3)(img).shape == (3, 3, 3)
    assert transform.RandomCrop((4, 6), padding=2)(img).shape == (4, 6, 3)
    assert transform.CenterCrop(2)(img).shape == (2, 2, 3)
    flips = {transform.RandomHorizontalFlip()(img)[0, 0, 0] for _ in range(30)}
    assert flips == {img[0, 0, 0], img[0, -1, 0]}
    np.testing.assert_array_equal(transform.RandomHorizontalFlip(1.0)(img), img[:, ::-1])
    r = transform.Resize((8, 12))(img)
    assert r.shape == (8, 12, 3) and r.dtype == np.uint8
    assert transform.Resize(2)(img).shape == (2, 3, 3)
    assert transform.Resize((2, 3), mode="nearest")(img).shape == (2, 3, 3)
    same = transform.Resize((4, 6))(img.astype(np.float32))
    np.testing.assert_array_equal(same, img.astype(np.float32))
    pipe = transform.Compose([transform.RandomCrop(4), transform.RandomHorizontalFlip(),
                              transform.ToTensor(), transform.ImageNormalize([0.1] * 3, [2] * 3)])
    assert pipe(img).shape == (3, 4, 4)


def test_bilinear_resize_matches_torch():
    torch = pytest.importorskip("torch")
    img = np.random.default_rng(0).uniform(0, 1, (5, 7, 2)).astype(np.float32)
    got = transform.Resize((9, 4))(img)
    want = torch.nn.functional.interpolate(torch.from_numpy(img.transpose(2, 0, 1))[None],
                                           size=(9, 4), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(got, want[0].numpy().transpose(1, 2, 0), rtol=1e-5, atol=1e-6)


# ---- workers never hang (issue: fork after an OpenMP kernel deadlocked) ----

FORK_AFTER_KERNELS = """
import kiln as jt
from kiln.dataset import DataLoader

print(jt.random((1 << 22,)).sum().item() > 0)        # a parallel kernel in the parent

class Squares:
    def __len__(self):
        return 8
    def __getitem__(self, i):                           # kiln kernels in the worker
        return (jt.ones((1 << 18,)) * i).sum().numpy()

got = [b.numpy().tolist() for b in DataLoader(Squares(), batch_size=2, num_workers=2)]
assert got == [[0, 2**18], [2 * 2**18, 3 * 2**18], [4 * 2**18, 5 * 2**18], [6 * 2**18, 7 * 2**18]], got
print("ok")
"""


def test_workers_forked_after_parallel_kernels_compute(tmp_path):
    import os
    import subprocess
    import sys
    script = tmp_path / "fork.py"
    script.write_text(FORK_AFTER_KERNELS)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=os.path.join(root, "python")))
    assert run.returncode == 0 and run.stdout.split() == ["True", "ok"], run.stdout + run.stderr


class _StuckOnThree:
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 3:
            import time
            time.sleep(3600)                 # a worker that never finishes this sample
        return np.float32(i)


def test_a_stuck_worker_is_reported_with_its_stack():
    import time
    loader = DataLoader(_StuckOnThree(), batch_size=1, num_workers=2, timeout=2)
    start = time.monotonic()
    with pytest.raises(RuntimeError) as e:
        for _ in loader:
            pass
    msg = str(e.value)
    assert "worker 1" in msg and "no progress for 2 s on batch 3" in msg, msg
    assert "time.sleep" in msg or "__getitem__" in msg, msg   # the worker's own stack
    assert time.monotonic() - start < 30
