"""kiln.dataset.mnist (jittor.dataset.mnist): the MNIST digits from local idx files.

    from kiln.dataset.mnist import MNIST
    train = MNIST(train=True).set_attrs(batch_size=16, shuffle=True)
    for imgs, labels in train:          # imgs (16, 3, 28, 28) float32 in [0, 1]
        ...

The standard files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte), gzipped or not, are read
from data_root (default ~/.cache/jittor/dataset/mnist_data/, where Jittor
keeps them). kiln never downloads them: its machines are offline, so missing
files raise DatasetNotFoundError naming them, whatever `download` says."""
import gzip
import os

import numpy as np

from .. import transform as _transform
from .dataset import Dataset, dataset_root
from .utils import missing_files_error

__all__ = ["MNIST", "read_idx"]

MNIST_SOURCE = "the MNIST database at https://storage.googleapis.com/cvdf-datasets/mnist/"

# idx magic numbers: two zero bytes, the element type (0x08: unsigned byte),
# and the number of dimensions
_IDX_UBYTE = 0x08


def _find(folder, name):
    """folder/name or folder/name.gz, whichever exists (the plain file first)."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def read_idx(path, ndim):
    """An idx file of unsigned bytes (gzipped when its name ends in .gz) as a
    uint8 array of `ndim` dimensions; the header is checked against the data."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    header = 4 + 4 * ndim
    if len(raw) < header or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE or raw[3] != ndim:
        raise ValueError(f"{path} is not an idx file of {ndim}-D unsigned bytes (its header "
                         f"starts {raw[:4].hex() or 'empty'}, expected 0000{_IDX_UBYTE:02x}"
                         f"{ndim:02x})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise ValueError(f"{path}: the header declares shape {shape} ({expected} bytes) but "
                         f"{len(raw) - header} bytes of data follow (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


class MNIST(Dataset):
    """Jittor's MNIST: samples are (3x28x28 float32 image in [0, 1], uint8
    label); the 1-channel digit is converted to RGB and passed through
    `transform` as a PIL image first, as in Jittor.

    Attributes: mnist ({"images": (N, 28, 28) uint8, "labels": (N,) uint8}),
    data_root, is_train, transform."""

    def __init__(self, data_root=dataset_root + "/mnist_data/", train=True, download=True,
                 batch_size=16, shuffle=False, transform=None):
        super().__init__()
        # download is accepted for Jittor's signature; the files must be local either way
        del download
        self.data_root = os.path.expanduser(data_root)
        self.is_train, self.transform = train, transform
        split = "train" if train else "t10k"
        names = (f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte")
        paths = [_find(self.data_root, n) for n in names]
        missing = [n + "(.gz)" for n, p in zip(names, paths) if p is None]
        if missing:
            raise missing_files_error(f"MNIST ({'train' if train else 'test'} split)",
                                      self.data_root, missing, MNIST_SOURCE)
        images, labels = read_idx(paths[0], 3), read_idx(paths[1], 1)
        if len(images) != len(labels):
            raise ValueError(f"MNIST: {paths[0]} holds {len(images)} images but {paths[1]} "
                             f"{len(labels)} labels")
        self.mnist = {"images": images, "labels": labels}
        self.set_attrs(batch_size=batch_size, shuffle=shuffle, total_len=len(images))

    def __getitem__(self, index):
        from PIL import Image        # only image datasets need Pillow
        img = Image.fromarray(self.mnist["images"][index]).convert("RGB")
        if self.transform:
            img = self.transform(img)
        return _transform.to_tensor(img), self.mnist["labels"][index]
