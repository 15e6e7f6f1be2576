"""kiln.dataset.dataset (jittor.dataset.dataset): Jittor's Dataset and
ImageFolder, PyTorch's DataLoader.

Jittor style: subclass Dataset, define __getitem__ and either __len__ (the
number of samples) or set_attrs(total_len=...), configure batching with
set_attrs(batch_size, shuffle, drop_last, num_workers), and iterate the
dataset itself to get batches as Vars (len(dataset) is then the number of
batches, as in Jittor, unless __len__ is defined).

PyTorch style: DataLoader(dataset, batch_size, shuffle, ..., num_workers)
over any map-style dataset (anything with __getitem__ and __len__).

num_workers > 0 prefetches batches in worker processes. Shuffling draws from
NumPy's global generator, which jt.seed seeds. Under mpirun each rank gets
its part of every global batch (kiln.distributed), from rank 0's shuffle.

A sampler (kiln.dataset.sampler) decides the order instead of shuffle, as in
Jittor: constructing one on a Dataset sets dataset.sampler, or use
set_attrs(sampler=...); a BatchSampler there gives the batches themselves."""
import math
import os
import pathlib

import numpy as np

from .. import distributed
from .._loader import BatchIterator, default_collate, get_worker_info, to_vars
from .._progress import progress

__all__ = ["Dataset", "DataLoader", "TensorDataset", "ArrayDataset", "Subset", "random_split",
           "ImageFolder", "dataset_root", "default_collate", "collate_batch", "get_worker_info",
           "to_vars"]

# Where Jittor keeps (and kiln looks for) datasets: ~/.cache/jittor/dataset, so
# that data a Jittor installation already has is found without copying.
dataset_root = os.path.join(pathlib.Path.home(), ".cache", "jittor", "dataset")

collate_batch = default_collate

_DEFAULTS = dict(batch_size=16, shuffle=False, drop_last=False, num_workers=0,
                 buffer_size=512 * 1024 * 1024, stop_grad=True, keep_numpy_array=False,
                 endless=False, total_len=None, collate_fn=None, progress=None,
                 prefetch_factor=2, worker_init_fn=None, sampler=None)


def _batches(n, batch_size, shuffle, drop_last):
    """The epoch's batches of indices; under MPI, this rank's part of each
    global batch (batch_size is the global one), from one shuffle for all."""
    order = np.random.permutation(n) if shuffle else np.arange(n)
    if batch_size is None:
        return [int(i) for i in order]
    bs = int(batch_size)
    if bs <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if shuffle:
        order = distributed.agreed_order(order)
    stop = n - n % bs if drop_last else n
    return distributed.shard_batches([order[i:i + bs] for i in range(0, stop, bs)])


def _sampler_batches(sampler, batch_size, drop_last):
    """The epoch's batches of indices in the sampler's order (this rank's part
    under MPI). A sampler that yields lists (BatchSampler) gives the batches
    as they are; batch_size and drop_last then do not apply."""
    drawn = list(sampler)
    if drawn and isinstance(drawn[0], (list, tuple, np.ndarray)):
        lengths = [len(b) for b in drawn]
        flat = np.concatenate([np.asarray(b, dtype=np.int64) for b in drawn])
        # random samplers draw on every rank: all ranks split rank 0's draw
        # (the batch lengths depend only on the sampler's length, the same everywhere)
        flat = np.asarray(distributed.agreed_order(flat), dtype=np.int64)
        return distributed.shard_batches(np.split(flat, np.cumsum(lengths)[:-1]))
    order = np.asarray(drawn, dtype=np.int64)
    if batch_size is None:
        return [int(i) for i in order]
    bs = int(batch_size)
    if bs <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = np.asarray(distributed.agreed_order(order), dtype=np.int64)
    stop = len(order) - len(order) % bs if drop_last else len(order)
    return distributed.shard_batches([order[i:i + bs] for i in range(0, stop, bs)])


def _yields_batches(sampler):
    # imported here: kiln.dataset.sampler imports this module
    from .sampler import BatchSampler
    return isinstance(sampler, BatchSampler)


def _batch_count(n, bs, drop_last):
    if drop_last:
        return n // bs
    return distributed.shared_batch_count(math.ceil(n / bs), n % bs or bs)


class Dataset:
    """Jittor's dataset base class (see the module's docstring)."""

    def __init__(self, batch_size=16, shuffle=False, drop_last=False, num_workers=0,
                 buffer_size=512 * 1024 * 1024, stop_grad=True, keep_numpy_array=False,
                 endless=False):
        self.set_attrs(batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                       num_workers=num_workers, buffer_size=buffer_size, stop_grad=stop_grad,
                       keep_numpy_array=keep_numpy_array, endless=endless)

    def _attr(self, name):
        return self.__dict__.get(name, _DEFAULTS[name])

    def __getattr__(self, name):
        # Jittor's Dataset sets every attribute in __init__, so programs read
        # dataset.sampler or dataset.total_len before setting them; kiln keeps
        # only what was set, and the rest reads as its default.
        if name in _DEFAULTS:
            return _DEFAULTS[name]
        if name in ("epoch_id", "batch_id"):
            return 0      # nothing iterated yet
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def set_attrs(self, **kwargs):
        """Sets batch_size, shuffle, drop_last, num_workers, total_len,
        keep_numpy_array, collate_fn, progress, ...; returns self."""
        for k, v in kwargs.items():
            if k not in _DEFAULTS:
                raise TypeError(f"set_attrs: unknown attribute {k!r} (known: "
                                f"{', '.join(sorted(_DEFAULTS))})")
            self.__dict__[k] = v
        return self

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def _defines_len(self):
        return type(self).__len__ is not Dataset.__len__

    def num_samples(self):
        """The dataset's size (what samplers draw from), whatever the sampler."""
        if self._defines_len():
            return len(self)
        total = self._attr("total_len")
        if total is None:
            raise TypeError(f"{type(self).__name__}: define __len__ or call "
                            "set_attrs(total_len=...)")
        return int(total)

    def __len__(self):
        """Jittor's: the number of batches (with total_len set)."""
        return self.num_batches()

    def __real_len__(self):
        """Jittor's name for the number of samples (its samplers call it)."""
        return self.num_samples()

    def num_batches(self):
        sampler = self._attr("sampler")
        if sampler is None:
            return _batch_count(self.num_samples(), self._attr("batch_size"),
                                self._attr("drop_last"))
        if _yields_batches(sampler):
            return len(sampler)
        n, bs = len(sampler), self._attr("batch_size")
        if bs is None:
            return n
        return _batch_count(n, bs, self._attr("drop_last"))

    @property
    def batch_len(self):
        return self.num_batches()

    def collate_batch(self, batch):
        """Override to batch samples differently (Jittor's hook)."""
        fn = self._attr("collate_fn")
        return fn(batch) if fn is not None else default_collate(batch)

    def _iterator(self):
        sampler = self._attr("sampler")
        if sampler is not None:
            # as in Jittor, a sampler replaces shuffle: it alone decides the order
            batches = _sampler_batches(sampler, self._attr("batch_size"), self._attr("drop_last"))
        else:
            batches = _batches(self.num_samples(), self._attr("batch_size"),
                               self._attr("shuffle"), self._attr("drop_last"))
        return BatchIterator(self, batches, self.collate_batch, self._attr("num_workers"),
                             self._attr("prefetch_factor"), self._attr("keep_numpy_array"),
                             self._attr("worker_init_fn"))

    def __iter__(self):
        """Batches; epoch_id counts the epochs started (0 for the first) and
        batch_id is the position of the last batch given in its epoch (Jittor)."""
        while True:
            started = self.__dict__.get("_kiln_epochs_started", 0)
            self.__dict__["_kiln_epochs_started"] = started + 1
            self.__dict__["epoch_id"] = started
            it = self._iterator()
            for i, batch in enumerate(progress(it, len(it), type(self).__name__, self._attr("progress"))):
                self.__dict__["batch_id"] = i
                yield batch
            if not self._attr("endless"):
                return

    def to_loader(self):
        return self


def _n_samples(dataset):
    return dataset.num_samples() if isinstance(dataset, Dataset) else len(dataset)


class DataLoader:
    """PyTorch's DataLoader over a map-style dataset; batches come as Vars
    (keep_numpy=True: NumPy arrays)."""

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, prefetch_factor=2, persistent_workers=False,
                 generator=None, keep_numpy=False, progress=None, multiprocessing_context=None):
        del pin_memory, persistent_workers, generator
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or
                                          drop_last):
            raise ValueError("batch_sampler is mutually exclusive with batch_size, shuffle, "
                             "sampler and drop_last")
        if sampler is not None and shuffle:
            raise ValueError("sampler is mutually exclusive with shuffle")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.num_workers, self.collate_fn = num_workers, collate_fn or default_collate
        self.drop_last, self.timeout = drop_last, timeout
        self.worker_init_fn, self.prefetch_factor = worker_init_fn, prefetch_factor
        self.keep_numpy, self.progress = keep_numpy, progress
        self.multiprocessing_context = multiprocessing_context

    def _index_batches(self):
        if self.batch_sampler is not None:
            return [list(b) for b in self.batch_sampler]
        if self.sampler is not None:
            order = [int(i) for i in self.sampler]
            if self.batch_size is None:
                return order
            bs = self.batch_size
            stop = len(order) - len(order) % bs if self.drop_last else len(order)
            return [order[i:i + bs] for i in range(0, stop, bs)]
        return _batches(_n_samples(self.dataset), self.batch_size, self.shuffle,
                        self.drop_last)

    def __len__(self):
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else _n_samples(self.dataset)
        if self.batch_size is None:
            return n
        if self.sampler is not None:
            return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return _batch_count(n, self.batch_size, self.drop_last)

    def __iter__(self):
        batches = self._index_batches()
        it = BatchIterator(self.dataset, batches, self.collate_fn, self.num_workers,
                           self.prefetch_factor, self.keep_numpy, self.worker_init_fn,
                           self.timeout, start_method=self.multiprocessing_context)
        return iter(progress(it, len(it), "DataLoader", self.progress))


class TensorDataset(Dataset):
    """Samples are rows of the given arrays (or Vars), as a tuple."""

    def __init__(self, *arrays):
        super().__init__()
        self.arrays = [a.numpy() if hasattr(a, "numpy") and not isinstance(a, np.ndarray)
                       else np.asarray(a) for a in arrays]
        n = {len(a) for a in self.arrays}
        if len(n) != 1:
            raise ValueError(f"TensorDataset: arrays have different lengths {sorted(n)}")

    def __getitem__(self, i):
        return tuple(a[i] for a in self.arrays)

    def __len__(self):
        return len(self.arrays[0])


ArrayDataset = TensorDataset


class Subset(Dataset):
    def __init__(self, dataset, indices):
        super().__init__()
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, seed=None):
    """Splits into non-overlapping Subsets of the given lengths (or fractions)."""
    n = len(dataset)
    lengths = list(lengths)
    if all(0 <= f <= 1 for f in lengths) and abs(sum(lengths) - 1) < 1e-6 and sum(lengths) != n:
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError(f"random_split: lengths {lengths} do not add up to {n}")
    rng = np.random if seed is None else np.random.RandomState(seed)
    order = rng.permutation(n)
    out, start = [], 0
    for k in lengths:
        out.append(Subset(dataset, order[start:start + k]))
        start += k
    return out


_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class ImageFolder(Dataset):
    """Images sorted into one folder per class (Jittor's ImageFolder):
    root/<class>/**/<image>. Classes are the sorted folder names, labelled
    0, 1, ...; a sample is (transform(RGB PIL image), label).

    Attributes: classes, class_to_idx, imgs (a list of (path, label))."""

    def __init__(self, root, transform=None):
        super().__init__()
        if not os.path.isdir(root):
            raise FileNotFoundError(f"ImageFolder: {root!r} is not a directory (expected "
                                    "root/<class name>/<image files>)")
        self.root, self.transform = root, transform
        self.classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.imgs = []
        for label, name in enumerate(self.classes):
            class_dir = os.path.join(root, name)
            for folder, _, files in sorted(os.walk(class_dir, followlinks=True)):
                for f in sorted(files):
                    if os.path.splitext(f)[1].lower() in _IMAGE_EXTENSIONS:
                        self.imgs.append((os.path.join(folder, f), label))
        self.set_attrs(total_len=len(self.imgs))

    def __getitem__(self, k):
        from PIL import Image        # only image datasets need Pillow
        path, label = self.imgs[k]
        with open(path, "rb") as f:
            img = Image.open(f).convert("RGB")
        if self.transform is not None:
            img = self.transform(img)
        return img, label
