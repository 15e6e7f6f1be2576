"""kiln.dataset as a package with Jittor's module paths: MNIST from idx files,
CIFAR from pickled batches (restricted unpickling), the offline rule for
missing files, ImageFolder, and the samplers (alone and driving a Dataset)."""
import gzip
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

import kiln as jt
from kiln import transform
from kiln.dataset import (BatchSampler, DataLoader, Dataset, DatasetNotFoundError,
                          RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                          WeightedRandomSampler)
from kiln.dataset.cifar import CIFAR10, CIFAR100
from kiln.dataset.dataset import ImageFolder
from kiln.dataset.mnist import MNIST
from kiln.dataset.utils import download_url_to_local
from kiln.io.safe_pickle import CheckpointError


# ---------------------------------------------------------------- package layout

def test_jittor_module_paths_and_old_names():
    import kiln.dataset.dataset as dd
    import kiln.dataset.sampler as ds
    import kiln.dataset.utils as du
    assert jt.dataset.ImageFolder is dd.ImageFolder is ImageFolder
    assert jt.dataset.MNIST is MNIST and jt.dataset.CIFAR100 is CIFAR100
    assert jt.dataset.SubsetRandomSampler is ds.SubsetRandomSampler
    assert callable(du.collate_batch) and dd.dataset_root.endswith(
        os.path.join(".cache", "jittor", "dataset"))
    # everything the single-module kiln.dataset exported is still there
    for name in ["Dataset", "DataLoader", "TensorDataset", "ArrayDataset", "Subset",
                 "random_split", "default_collate", "collate_batch", "get_worker_info",
                 "to_vars", "SequentialSampler", "RandomSampler", "BatchSampler"]:
        assert hasattr(jt.dataset, name), name
    star = {}
    exec("from kiln.dataset import *", star)
    assert {"Dataset", "SubsetRandomSampler", "BatchSampler", "MNIST"} <= set(star)


# ---------------------------------------------------------------- MNIST

def _idx_bytes(array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx(path, array, gz):
    data = _idx_bytes(array)
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    split = {"train": (rng.integers(0, 256, (5, 28, 28)), np.array([3, 1, 4, 1, 5])),
             "t10k": (rng.integers(0, 256, (3, 28, 28)), np.array([9, 2, 6]))}
    # the train split gzipped, the test split plain: both forms are read
    _write_idx(tmp_path / "train-images-idx3-ubyte", split["train"][0], gz=True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", split["train"][1], gz=True)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", split["t10k"][0], gz=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", split["t10k"][1], gz=False)
    return tmp_path, split


@pytest.mark.parametrize("train", [True, False])
def test_mnist_reads_idx_files_exactly(mnist_dir, train):
    root, split = mnist_dir
    images, labels = split["train" if train else "t10k"]
    ds = MNIST(data_root=str(root), train=train, batch_size=2)
    np.testing.assert_array_equal(ds.mnist["images"], images)
    np.testing.assert_array_equal(ds.mnist["labels"], labels)
    assert len(ds) == (len(labels) + 1) // 2           # batches, as Jittor's MNIST
    img, label = ds[1]
    assert img.shape == (3, 28, 28) and img.dtype == np.float32 and label == labels[1]
    for c in range(3):                                  # gray digit -> RGB, scaled to [0, 1]
        np.testing.assert_array_equal(img[c], images[1].astype(np.float32) / np.float32(255))
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    assert [len(y) for y in ys] == [2] * (len(labels) // 2) + [1] * (len(labels) % 2)
    assert np.concatenate(ys).tolist() == labels.tolist()
    np.testing.assert_array_equal(np.concatenate(xs)[:, 0] * 255, images.astype(np.float32))


def test_mnist_transform_and_attrs(mnist_dir):
    root, split = mnist_dir
    ds = MNIST(data_root=str(root), transform=transform.Resize(14), batch_size=4, shuffle=True)
    assert ds[0][0].shape == (3, 14, 14)
    np.random.seed(0)
    ys = np.concatenate([y.numpy() for _, y in ds])
    assert sorted(ys.tolist()) == sorted(split["train"][1].tolist())


def test_mnist_rejects_damaged_idx(tmp_path):
    good = _idx_bytes(np.zeros((2, 28, 28)))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(good[:-5])          # truncated
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(2)))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        MNIST(data_root=str(tmp_path))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + good[4:])
    with pytest.raises(ValueError, match="not an idx file"):
        MNIST(data_root=str(tmp_path))


@pytest.mark.parametrize("download", [True, False])
def test_mnist_missing_files_name_what_and_where(tmp_path, download):
    with pytest.raises(DatasetNotFoundError) as e:
        MNIST(data_root=str(tmp_path), train=False, download=download)
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte(.gz)" in msg and "t10k-labels-idx1-ubyte(.gz)" in msg
    assert str(tmp_path) in msg and "offline" in msg
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((1, 28, 28)), gz=True)
    with pytest.raises(FileNotFoundError) as e:
        MNIST(data_root=str(tmp_path), train=False)
    assert "t10k-labels-idx1-ubyte(.gz)" in str(e.value)
    assert "t10k-images" not in str(e.value)


# ---------------------------------------------------------------- CIFAR

class _Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 str opcodes (SHORT_BINSTRING/BINSTRING), as the
    real CIFAR batches hold their keys and pixel data."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _python2_pickle(obj):
    buf = io.BytesIO()
    _Python2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _cifar_rows(seed, n):
    return np.random.default_rng(seed).integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)


def _write_cifar10(root):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for k, name in enumerate(["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                              "data_batch_5", "test_batch"]):
        rows, labels = _cifar_rows(k, 2), [k % 10, (k + 3) % 10]
        batches[name] = (rows, labels)
        if k == 0:   # Python 2 format (bytes keys, str data), as the published files
            blob = _python2_pickle({b"batch_label": b"training batch 1 of 5", b"data": rows,
                                    b"labels": labels, b"filenames": [b"a.png", b"b.png"]})
        else:        # a Python 3 pickle of plain arrays
            blob = pickle.dumps({"data": rows, "labels": labels}, protocol=4)
        (folder / name).write_bytes(blob)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    (folder / "batches.meta").write_bytes(_python2_pickle({b"label_names": [
        n.encode() for n in names], b"num_vis": 3072}))
    return batches, names


def test_cifar10_reads_batches_exactly(tmp_path):
    batches, names = _write_cifar10(tmp_path)
    ds = CIFAR10(root=str(tmp_path), train=True)
    assert len(ds) == 10 and ds.classes == names and ds.class_to_idx["cat"] == 3
    want_rows = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    want_labels = sum([batches[f"data_batch_{i}"][1] for i in range(1, 6)], [])
    assert ds.targets == want_labels
    np.testing.assert_array_equal(ds.data, want_rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    img, target = ds[7]
    np.testing.assert_array_equal(np.asarray(img),
                                  want_rows[7].reshape(3, 32, 32).transpose(1, 2, 0))
    assert target == want_labels[7]
    test = CIFAR10(root=str(tmp_path), train=False, transform=transform.ToTensor(),
                   target_transform=lambda t: t + 100)
    test.set_attrs(batch_size=2)
    (x, y), = list(test)
    assert x.shape == (2, 3, 32, 32) and y.numpy().tolist() == [105, 108]
    np.testing.assert_allclose(x.numpy()[1] * 255, batches["test_batch"][0][1].reshape(3, 32, 32),
                               atol=1e-3)


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rows = _cifar_rows(7, 3)
    (folder / "test").write_bytes(_python2_pickle({b"data": rows, b"fine_labels": [42, 0, 99],
                                                   b"coarse_labels": [1, 2, 3]}))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)],
                                                "coarse_label_names": ["x"] * 20}))
    ds = CIFAR100(root=str(tmp_path), train=False)
    assert ds.targets == [42, 0, 99] and len(ds.classes) == 100 and ds.classes[42] == "c42"
    np.testing.assert_array_equal(ds.data[2], rows[2].reshape(3, 32, 32).transpose(1, 2, 0))
    with pytest.raises(DatasetNotFoundError, match="'?train'?"):
        CIFAR100(root=str(tmp_path), train=True)


class _RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_refuses_a_pickle_that_runs_code(tmp_path):
    _write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"data": _RunsAShellCommand(marker), "labels": [0]})
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(evil)
    with pytest.raises(CheckpointError, match="refusing to load the global .*system"):
        CIFAR10(root=str(tmp_path), train=False)
    assert not marker.exists()
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(
        {"data": _cifar_rows(0, 2)})[:-40])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        CIFAR10(root=str(tmp_path), train=False)


def test_cifar_missing_files_and_a_local_archive(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        CIFAR10(root=str(tmp_path), train=False)
    msg = str(e.value)
    assert "test_batch" in msg and "batches.meta" in msg and "offline" in msg
    assert os.path.join(str(tmp_path), "cifar-10-batches-py") in msg
    assert "data_batch_1" not in msg                     # only what the test split needs
    # download=True unpacks an archive already in root (and nothing outside its folder)
    src = tmp_path / "src"
    batches, _ = _write_cifar10(src)
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        evil = tarfile.TarInfo("cifar-10-batches-py/../../escaped")
        evil.size = 3
        tar.addfile(evil, io.BytesIO(b"bad"))
    with pytest.raises(DatasetNotFoundError):
        CIFAR10(root=str(tmp_path), train=False, download=False)
    ds = CIFAR10(root=str(tmp_path), train=False, download=True)
    assert ds.targets == batches["test_batch"][1]
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "escaped").exists()
    assert sorted(os.listdir(tmp_path / "cifar-10-batches-py")) == ["batches.meta", "test_batch"]


# ---------------------------------------------------------------- ImageFolder, utils

def test_image_folder(tmp_path):
    from PIL import Image
    for cls, shade in (("cat", 10), ("dog", 200)):
        (tmp_path / cls / "sub").mkdir(parents=True)
        Image.fromarray(np.full((4, 5, 3), shade, np.uint8)).save(tmp_path / cls / "b.png")
        Image.fromarray(np.full((4, 5), shade + 1, np.uint8)).save(tmp_path / cls / "sub" / "a.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    ds = ImageFolder(str(tmp_path)).set_attrs(batch_size=4)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert [label for _, label in ds.imgs] == [0, 0, 1, 1] and len(ds.imgs) == 4
    img, label = ds[1]
    assert img.mode == "RGB" and img.size == (5, 4) and label == 0
    (x, y), = list(ds)
    assert x.shape == (4, 4, 5, 3) and y.numpy().tolist() == [0, 0, 1, 1]
    assert sorted(set(x.numpy()[:, 0, 0, 0].tolist())) == [10, 11, 200, 201]


def test_offline_downloader(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="offline"):
        download_url_to_local("https://example.org/f.bin", "f.bin", str(tmp_path), None)
    (tmp_path / "f.bin").write_bytes(b"abc")
    md5 = "900150983cd24fb0d6963f7d28e17f72"
    assert download_url_to_local("u", "f.bin", str(tmp_path), md5) == str(tmp_path / "f.bin")
    with pytest.raises(ValueError, match="expected 0+"):
        download_url_to_local("u", "f.bin", str(tmp_path), "0" * 32)


# ---------------------------------------------------------------- samplers

class Indices(Dataset):
    """Jittor style (total_len, no __len__): sample k is k."""

    def __init__(self, n):
        super().__init__()
        self.set_attrs(total_len=n, batch_size=1)

    def __getitem__(self, k):
        return k


def _epoch(ds):
    return np.concatenate([b.numpy().reshape(-1) for b in ds]).tolist()


def test_sequential_and_random_samplers_seeded():
    ds = Indices(12)
    assert list(SequentialSampler(ds)) == list(range(12)) and len(SequentialSampler(ds)) == 12
    np.random.seed(5)
    assert list(RandomSampler(ds)) == np.random.RandomState(5).permutation(12).tolist()
    r = RandomSampler(ds, replacement=True, num_samples=30)
    np.random.seed(6)
    got = list(r)
    assert len(r) == 30 and got == np.random.RandomState(6).randint(0, 12, 30).tolist()
    longer = list(RandomSampler(ds, num_samples=30))     # without replacement: whole permutations
    assert len(longer) == 30 and sorted(longer[:12]) == sorted(longer[12:24]) == list(range(12))
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert list(RandomSampler(range(9), generator=rng_a)) == rng_b.permutation(9).tolist()
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(ds, num_samples=0)


def test_subset_random_sampler_covers_exactly_its_indices():
    ds = Indices(40)
    s = SubsetRandomSampler(ds, (20, 30))                  # Jittor: a range of the dataset
    assert len(s) == 10 and ds.sampler is s
    np.random.seed(0)
    first = list(s)
    assert sorted(first) == list(range(20, 30)) and first != list(range(20, 30))
    assert sorted(list(s)) == list(range(20, 30))          # every epoch, a fresh order
    torch_style = SubsetRandomSampler([31, 2, 17, 2])      # PyTorch: any indices
    assert len(torch_style) == 4 and sorted(torch_style) == [2, 2, 17, 31]
    for bad in ((30, 20), (-1, 3), (35, 41)):
        with pytest.raises(ValueError, match="range"):
            SubsetRandomSampler(ds, bad)


def test_batch_and_weighted_samplers():
    seq = SequentialSampler(range(10))
    assert list(BatchSampler(seq, 4, drop_last=False)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(BatchSampler(seq, 4, drop_last=False)) == 3
    assert list(BatchSampler(seq, 4, drop_last=True)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(BatchSampler(seq, 4, drop_last=True)) == 2
    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(seq, 0, False)
    w = WeightedRandomSampler([0, 0, 3, 0], num_samples=6)
    assert list(w) == [2] * 6 and len(w) == 6
    assert sorted(WeightedRandomSampler([1, 0, 2, 5], 3, replacement=False)) == [0, 2, 3]
    with pytest.raises(ValueError, match="without replacement"):
        WeightedRandomSampler([1, 0, 0], 2, replacement=False)


class _FixedOrder(Sampler):
    """A user sampler in Jittor's style: binds itself through Sampler.__init__."""

    def __init__(self, dataset, order):
        super().__init__(dataset)
        self.order = order

    def __iter__(self):
        return iter(self.order)

    def __len__(self):
        return len(self.order)


@pytest.mark.parametrize("workers", [0, 2])
def test_dataset_iterates_in_its_samplers_order(workers):
    ds = Indices(10).set_attrs(batch_size=3, shuffle=True, num_workers=workers)
    assert ds.sampler is None                              # readable before any is set (Jittor)
    order = [7, 3, 3, 9, 0, 5, 1]
    s = _FixedOrder(ds, order)
    assert ds.sampler is s and len(ds) == 3                # batches of the sampler's 7
    batches = [b.numpy().tolist() for b in ds]
    assert batches == [[7, 3, 3], [9, 0, 5], [1]]           # shuffle gives way to the sampler
    ds.set_attrs(drop_last=True)
    assert len(ds) == 2 and _epoch(ds) == order[:6]
    ds.set_attrs(drop_last=False, sampler=None)             # back to shuffle
    assert sorted(_epoch(ds)) == list(range(10))


def test_dataset_with_random_and_batch_samplers():
    ds = Indices(15).set_attrs(batch_size=4)
    RandomSampler(ds)
    np.random.seed(11)
    assert _epoch(ds) == np.random.RandomState(11).permutation(15).tolist()
    ds.set_attrs(sampler=BatchSampler(SequentialSampler(range(15)), 6, drop_last=False))
    assert len(ds) == 3 and [b.numpy().tolist() for b in ds] == [
        list(range(6)), list(range(6, 12)), [12, 13, 14]]
    # PyTorch style: the sampler drives a DataLoader and leaves a plain list alone
    data = list(range(100, 110))
    dl = DataLoader(data, batch_size=2, sampler=SubsetRandomSampler([1, 8, 4]))
    assert sorted(np.concatenate([b.numpy() for b in dl]).tolist()) == [101, 104, 108]


def test_epoch_and_batch_ids_follow_the_iteration():
    import kiln as jt

    class Numbers(jt.dataset.Dataset):
        def __init__(self):
            super().__init__(batch_size=2)

        def __len__(self):
            return 6

        def __getitem__(self, i):
            return np.float32(i)

    d = Numbers()
    assert (d.epoch_id, d.batch_id) == (0, 0)
    seen = []
    for _ in range(2):
        for _ in d:
            seen.append((d.epoch_id, d.batch_id))
    assert seen == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
