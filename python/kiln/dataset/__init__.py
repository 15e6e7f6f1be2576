"""kiln.dataset (jt.dataset, jittor.dataset): datasets, loaders and samplers,
laid out as Jittor's package so its module paths import unchanged:

* kiln.dataset.dataset - Dataset (Jittor style), DataLoader (PyTorch style),
  TensorDataset, Subset, random_split, ImageFolder, dataset_root
* kiln.dataset.sampler - Sampler, SequentialSampler, RandomSampler,
  SubsetRandomSampler, WeightedRandomSampler, BatchSampler
* kiln.dataset.mnist   - MNIST (local idx files)
* kiln.dataset.cifar   - CIFAR10, CIFAR100 (local python batches)
* kiln.dataset.utils   - collate_batch, MD5 checks, the offline downloader

Every name is also available here, as ``from kiln.dataset import X``."""
from .dataset import (ArrayDataset, DataLoader, Dataset, ImageFolder, Subset, TensorDataset,
                      collate_batch, dataset_root, default_collate, get_worker_info,
                      random_split, to_vars)
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                      SubsetRandomSampler, WeightedRandomSampler)
from .mnist import MNIST
from .cifar import CIFAR10, CIFAR100
from .utils import DatasetNotFoundError   # also binds kiln.dataset.utils

__all__ = ["Dataset", "DataLoader", "TensorDataset", "ArrayDataset", "Subset", "random_split",
           "ImageFolder", "dataset_root", "default_collate", "collate_batch", "get_worker_info",
           "to_vars", "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler", "MNIST", "CIFAR10", "CIFAR100",
           "DatasetNotFoundError"]
