"""kiln.dataset.sampler (jittor.dataset.sampler): the order a dataset's samples
are drawn in, for Jittor's Dataset iteration and PyTorch's DataLoader.

Jittor behaviour: a sampler constructed on a kiln Dataset becomes that
dataset's sampler (``dataset.sampler = self``), so iterating the dataset then
follows it::

    RandomSampler(dataset)           # iterating dataset is now shuffled
    SubsetRandomSampler(dataset, (20, 30))   # only samples 20..29, shuffled

PyTorch behaviour: samplers over any sized data source, passed to
DataLoader(sampler=...) or wrapped in a BatchSampler; SubsetRandomSampler
also takes PyTorch's form, SubsetRandomSampler(indices).

Random draws use NumPy's global generator (seeded by jt.seed), or the
``generator`` given: a numpy.random.Generator or RandomState."""
import math

import numpy as np

from .dataset import Dataset, _n_samples

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler"]


def _permutation(n, generator):
    rng = np.random if generator is None else generator
    return rng.permutation(n)


def _integers(high, size, generator):
    if generator is None:
        return np.random.randint(0, high, size=size, dtype=np.int64)
    if hasattr(generator, "integers"):                 # numpy.random.Generator
        return generator.integers(0, high, size=size, dtype=np.int64)
    return generator.randint(0, high, size=size, dtype=np.int64)   # RandomState


class Sampler:
    """Base class: subclasses define __iter__ (indices) and __len__. Given a
    kiln Dataset, the sampler becomes its sampler, as in Jittor."""

    def __init__(self, data_source=None):
        # `dataset` is Jittor's name for it, `data_source` PyTorch's
        self.data_source = self.dataset = data_source
        if isinstance(data_source, Dataset):
            data_source.sampler = self

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


class SequentialSampler(Sampler):
    """0, 1, ..., n-1, n being the data source's size when iterated."""

    def __init__(self, data_source):
        super().__init__(data_source)

    def __iter__(self):
        return iter(range(_n_samples(self.data_source)))

    def __len__(self):
        return _n_samples(self.data_source)


class RandomSampler(Sampler):
    """A fresh permutation every epoch; with replacement=True, num_samples
    independent draws. Without replacement, a num_samples larger than the
    data source takes further permutations (as PyTorch's does)."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        super().__init__(data_source)
        if num_samples is not None and (not isinstance(num_samples, (int, np.integer))
                                        or num_samples <= 0):
            raise ValueError(f"RandomSampler: num_samples must be a positive integer, "
                             f"got {num_samples!r}")
        self.replacement, self._num_samples, self.generator = replacement, num_samples, generator

    @property
    def num_samples(self):
        if self._num_samples is None:
            return _n_samples(self.data_source)
        return int(self._num_samples)

    def __iter__(self):
        n, want = _n_samples(self.data_source), self.num_samples
        if n == 0:
            return iter([])
        if self.replacement:
            return iter(_integers(n, want, self.generator).tolist())
        rounds = [_permutation(n, self.generator) for _ in range(math.ceil(want / n))]
        return iter(np.concatenate(rounds)[:want].tolist())

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a fresh random order every epoch.

    Jittor's form: SubsetRandomSampler(dataset, (start, end)) takes the
    samples start..end-1 of the dataset (and becomes its sampler).
    PyTorch's form: SubsetRandomSampler(indices[, generator]), any indices."""

    def __init__(self, data_source_or_indices, indice=None, generator=None):
        if indice is None:                                   # PyTorch: (indices)
            super().__init__(None)
            self.indices = [int(i) for i in data_source_or_indices]
        else:                                                # Jittor: (dataset, (start, end))
            if len(indice) != 2:
                raise ValueError("SubsetRandomSampler(dataset, indice): indice is the range "
                                 f"(start, end) of samples to draw, got {indice!r}")
            super().__init__(data_source_or_indices)
            start, end = int(indice[0]), int(indice[1])
            n = _n_samples(data_source_or_indices)
            if not 0 <= start < end <= n:
                raise ValueError(f"SubsetRandomSampler: range ({start}, {end}) is not a "
                                 f"non-empty part of the dataset's {n} samples")
            self.indices = list(range(start, end))
        self.generator = generator

    def __iter__(self):
        order = _permutation(len(self.indices), self.generator)
        return iter([self.indices[i] for i in order])

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """num_samples indices drawn with probability proportional to weights
    (PyTorch's), with or without replacement."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        super().__init__(None)
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, non-negative and "
                             "not all zero")
        if not replacement and num_samples > np.count_nonzero(w):
            raise ValueError(f"WeightedRandomSampler: cannot draw {num_samples} samples without "
                             f"replacement from {np.count_nonzero(w)} with non-zero weight")
        self.weights, self.num_samples = w, int(num_samples)
        self.replacement, self.generator = replacement, generator

    def __iter__(self):
        rng = np.random if self.generator is None else self.generator
        drawn = rng.choice(len(self.weights), size=self.num_samples, replace=self.replacement,
                           p=self.weights / self.weights.sum())
        return iter(drawn.tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups another sampler's indices into lists of batch_size (the last
    one shorter unless drop_last)."""

    def __init__(self, sampler, batch_size, drop_last):
        super().__init__(None)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size must be a positive integer, "
                             f"got {batch_size!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self):
        batch = []
        for i in self.sampler:
            batch.append(int(i))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
