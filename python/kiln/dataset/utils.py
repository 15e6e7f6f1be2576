"""kiln.dataset.utils (jittor.dataset.utils): helpers for datasets kept on disk.

kiln's machines are offline, so nothing here fetches from the network:
download_url_to_local accepts a file the user has placed (checking its MD5)
and otherwise raises DatasetNotFoundError saying which file belongs where."""
import hashlib
import os

import numpy as np

from .._loader import default_collate, to_vars

__all__ = ["DatasetNotFoundError", "missing_files_error", "ensure_dir", "calculate_md5",
           "check_md5", "check_file_exist", "download_url_to_local", "get_random_list",
           "get_order_list", "collate_batch"]

OFFLINE_NOTE = ("kiln does not download datasets (its machines are offline, so download=True "
                "cannot fetch them)")


class DatasetNotFoundError(FileNotFoundError):
    """Files a dataset needs are not on disk; the message names them and where
    they are expected."""


def missing_files_error(name, folder, missing, source):
    """The error for a dataset whose files in `folder` are missing: which ones,
    where, and where to get them (`source`) since kiln cannot download."""
    return DatasetNotFoundError(
        f"{name}: missing {', '.join(missing)} in {os.path.normpath(folder)}. {OFFLINE_NOTE}: "
        f"copy the file{'s' if len(missing) > 1 else ''} there from {source} or point the "
        "dataset at the folder that holds them.")


def ensure_dir(dir_path):
    os.makedirs(dir_path, exist_ok=True)


def calculate_md5(file_path, chunk_size=1024 * 1024):
    md5 = hashlib.md5()
    with open(file_path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            md5.update(chunk)
    return md5.hexdigest()


def check_md5(file_path, md5, **kwargs):
    return md5 == calculate_md5(file_path, **kwargs)


def check_file_exist(file_path, md5):
    """Whether file_path is a file (with that MD5, unless md5 is None)."""
    if not os.path.isfile(file_path):
        return False
    return md5 is None or check_md5(file_path, md5)


def download_url_to_local(url, filename, root_folder, md5):
    """Jittor's downloader, offline: returns root_folder/filename when it is
    there and matches md5; otherwise raises, saying to place it there from url."""
    path = os.path.join(root_folder, filename)
    if not os.path.isfile(path):
        raise missing_files_error(filename, root_folder, [filename], url)
    if md5 is not None:
        got = calculate_md5(path)
        if got != md5:
            raise ValueError(f"{path} has MD5 {got}, expected {md5} (incomplete or a different "
                             f"file): replace it with a copy of {url}. {OFFLINE_NOTE}.")
    return path


def get_random_list(n):
    return list(np.random.permutation(range(n)))


def get_order_list(n):
    return list(range(n))


def collate_batch(batch):
    """Jittor's collate: samples -> one batch whose numeric fields are Vars
    (Dataset iteration collates with default_collate and converts the same way)."""
    return to_vars(default_collate(batch))
