"""kiln.dataset.cifar (jittor.dataset.cifar): CIFAR-10 and CIFAR-100 from the
local "python version" batches.

    from kiln.dataset.cifar import CIFAR10
    train = CIFAR10(train=True, transform=transform.ToTensor()).set_attrs(batch_size=64)

root (default ~/.cache/jittor/dataset/cifar_data/, where Jittor keeps it)
holds cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta) or,
for CIFAR100, cifar-100-python/ (train, test, meta). With download=True a
cifar-10-python.tar.gz / cifar-100-python.tar.gz already in root is unpacked
there; nothing is fetched from the network (kiln's machines are offline), so
missing files raise DatasetNotFoundError naming them.

The batches are pickles, and a pickle can run code when loaded, so they are
read with kiln's restricted unpickler (kiln.io.safe_pickle): only plain
containers, numbers, strings and NumPy arrays can come out of them; a file
that names anything else is refused with CheckpointError."""
import os
import pickle
import tarfile

import numpy as np

from ..io.safe_pickle import (UNPICKLE_ERRORS, BoundedReader, CheckpointError,
                              RestrictedUnpickler, _check_lengths, file_size, finish)
from .dataset import Dataset, dataset_root
from .utils import missing_files_error

__all__ = ["CIFAR10", "CIFAR100", "load_pickled_batch"]

_IMAGE_BYTES = 3 * 32 * 32


class _Python2Unpickler(RestrictedUnpickler):
    """The restricted unpickler reading Python 2 strings as latin-1.

    CIFAR's batches were written by Python 2, whose str objects hold raw bytes
    (the pixel data among them): latin-1 maps them back byte for byte, as
    torchvision and Jittor read them. RestrictedUnpickler fixes utf-8, which
    fails on arbitrary bytes, so the pickle machinery is initialised again
    with latin-1; find_class (the allow-list) is the restricted one still."""

    def __init__(self, file, budget, what):
        super().__init__(file, budget=budget, what=what)
        pickle.Unpickler.__init__(self, file, encoding="latin1")


def load_pickled_batch(path, what=None):
    """One pickled dict of plain data (a CIFAR batch or meta file) from path,
    through the restricted unpickler; bytes keys come back as str."""
    what = what or f"the data file {path}"
    with open(path, "rb") as f:
        limit = file_size(f)
        try:
            if limit is not None:
                _check_lengths(f, limit)       # refuses lengths the file cannot back
            src = f if limit is None else BoundedReader(f, limit)
            budget = limit if limit is not None else 1 << 62
            obj = finish(_Python2Unpickler(src, budget, what).load())
        except CheckpointError:
            raise
        except UNPICKLE_ERRORS as e:           # UnicodeDecodeError is a ValueError
            raise ValueError(f"{what} is truncated or corrupt: could not read it "
                             f"({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} holds a {type(obj).__name__}, expected a dict")
    return {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _extract_members(archive, root, folder, names):
    """Unpacks folder/<name> for the given names from a tar archive into root.
    Only those regular files are written, under names kiln builds itself, so
    an archive cannot place anything elsewhere (no links, '..' or absolute paths)."""
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            if not member.isfile() or len(parts) != 2 or parts[0] != folder \
                    or parts[1] not in names:
                continue
            dest = os.path.join(root, folder, parts[1])
            src = tar.extractfile(member)
            with open(dest + ".part", "wb") as out:
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
            os.replace(dest + ".part", dest)    # never a half-written batch under its name


class CIFAR10(Dataset):
    """Jittor's (and torchvision's) CIFAR10: samples are (transform(PIL image
    32x32 RGB), target_transform(label)); len() is the number of samples.

    Attributes: data ((N, 32, 32, 3) uint8, HWC), targets (list of int),
    classes, class_to_idx, root, train."""

    base_folder = "cifar-10-batches-py"
    filename = "cifar-10-python.tar.gz"
    source = "the CIFAR-10 python version at https://www.cs.toronto.edu/~kriz/cifar.html"
    train_list = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"]
    test_list = ["test_batch"]
    meta = {"filename": "batches.meta", "key": "label_names"}
    label_keys = ("labels", "fine_labels")

    def __init__(self, root=dataset_root + "/cifar_data/", train=True, transform=None,
                 target_transform=None, download=True):
        super().__init__()
        self.root = os.path.expanduser(root)
        self.train, self.transform, self.target_transform = train, transform, target_transform
        folder = os.path.join(self.root, self.base_folder)
        needed = (self.train_list if train else self.test_list) + [self.meta["filename"]]
        missing = self._missing(needed)
        archive = os.path.join(self.root, self.filename)
        if missing and download and os.path.isfile(archive):
            # Jittor's download=True unpacks the archive it fetched; a local one is used as such
            _extract_members(archive, self.root, self.base_folder, set(needed))
            missing = self._missing(needed)
        if missing:
            raise missing_files_error(
                type(self).__name__, folder, missing,
                f"{self.source}, or put its archive {self.filename} in {self.root} and pass "
                "download=True to unpack it;")

        images, self.targets = [], []
        for name in needed[:-1]:
            path = os.path.join(folder, name)
            entry = load_pickled_batch(path, f"{type(self).__name__} batch {path}")
            data, labels = self._batch_arrays(entry, path)
            images.append(data)
            self.targets.extend(labels)
        # stored CHW per row; kept HWC, as PIL (and Jittor's CIFAR) take images
        self.data = np.ascontiguousarray(
            np.concatenate(images).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        self._load_meta(os.path.join(folder, self.meta["filename"]))

    def _missing(self, names):
        folder = os.path.join(self.root, self.base_folder)
        return [n for n in names if not os.path.isfile(os.path.join(folder, n))]

    def _batch_arrays(self, entry, path):
        data = entry.get("data")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 \
                or data.size % _IMAGE_BYTES:
            raise ValueError(f"{path}: 'data' should be a uint8 array of rows of "
                             f"{_IMAGE_BYTES} bytes (3x32x32), got "
                             f"{getattr(data, 'dtype', type(data).__name__)} "
                             f"{getattr(data, 'shape', '')}")
        key = next((k for k in self.label_keys if k in entry), None)
        if key is None:
            raise ValueError(f"{path}: no labels (expected a key among {list(self.label_keys)}, "
                             f"found {sorted(map(str, entry))})")
        labels = [int(v) for v in np.asarray(entry[key]).reshape(-1)]
        if len(labels) != data.size // _IMAGE_BYTES:
            raise ValueError(f"{path}: {data.size // _IMAGE_BYTES} images but {len(labels)} labels")
        return data.reshape(-1, _IMAGE_BYTES), labels

    def _load_meta(self, path):
        meta = load_pickled_batch(path, f"{type(self).__name__} metadata {path}")
        if self.meta["key"] not in meta:
            raise ValueError(f"{path}: no {self.meta['key']!r} (found {sorted(map(str, meta))})")
        self.classes = [c.decode("latin-1") if isinstance(c, bytes) else str(c)
                        for c in meta[self.meta["key"]]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    def __getitem__(self, index):
        from PIL import Image        # only image datasets need Pillow
        img, target = Image.fromarray(self.data[index]), self.targets[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self):
        return len(self.data)

    def extra_repr(self):
        return f"Split: {'Train' if self.train else 'Test'}"


class CIFAR100(CIFAR10):
    """CIFAR-100 (fine labels, 100 classes), from cifar-100-python/."""

    base_folder = "cifar-100-python"
    filename = "cifar-100-python.tar.gz"
    source = "the CIFAR-100 python version at https://www.cs.toronto.edu/~kriz/cifar.html"
    train_list = ["train"]
    test_list = ["test"]
    meta = {"filename": "meta", "key": "fine_label_names"}
    label_keys = ("fine_labels",)
