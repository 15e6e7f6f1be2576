"""The batch machinery shared by kiln.dataset.Dataset (Jittor style) and
kiln.dataset.DataLoader (PyTorch style): default_collate (NumPy arrays,
numbers, Vars, dicts, tuples), conversion of batches to Vars, and the
iterator, in-process or with worker processes that prefetch batches (each
worker gets index lists on its own queue and sends collated NumPy batches
back; the main process yields them in order).

Workers are forked by default (datasets need not be picklable); kiln's core
computes on one thread in a forked child, since OpenMP cannot start its
threads there. A worker that sends nothing for the stall timeout is reported
with its index and Python stack (faulthandler, on SIGUSR1) instead of being
waited on forever."""
import collections
import faulthandler
import multiprocessing as mp
import numbers
import os
import queue
import signal
import tempfile
import time
import traceback

import numpy as np

from ._core import Var, array

__all__ = ["default_collate", "to_vars", "BatchIterator"]


def default_collate(batch):
    """A list of samples -> one batch: arrays stacked, numbers as arrays
    (ints int64, floats float32), dicts/tuples collated field by field."""
    elem = batch[0]
    if isinstance(elem, Var):
        return np.stack([b.numpy() for b in batch])
    if isinstance(elem, np.ndarray):
        return np.stack(batch)
    if isinstance(elem, (bool, np.bool_)):
        return np.array(batch, dtype=np.bool_)
    if isinstance(elem, numbers.Integral):
        return np.array(batch, dtype=np.int64)
    if isinstance(elem, np.generic):
        return np.array(batch)
    if isinstance(elem, numbers.Real):
        return np.array(batch, dtype=np.float32)
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        return {k: default_collate([b[k] for b in batch]) for k in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        n = len(elem)
        if any(len(b) != n for b in batch):
            raise ValueError("default_collate: samples of a batch have different lengths")
        return [default_collate(list(s)) for s in zip(*batch)]
    if hasattr(elem, "__array__") or hasattr(elem, "__array_interface__"):   # PIL images
        return np.stack([np.asarray(b) for b in batch])
    raise TypeError(f"default_collate: cannot batch samples of type {type(elem).__name__}")


def to_vars(obj):
    """NumPy arrays in a collated batch -> Vars (strings and others unchanged)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "biuf":
            return array(obj)
        return obj
    if isinstance(obj, dict):
        return {k: to_vars(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(to_vars(v) for v in obj))
    if isinstance(obj, list):
        return [to_vars(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_vars(v) for v in obj)
    return obj


def _to_numpy(obj):
    """Vars in a worker's batch -> NumPy arrays (Vars don't cross processes)."""
    if isinstance(obj, Var):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_numpy(v) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_to_numpy(v) for v in obj)
    return obj


def _fetch(dataset, indices, collate_fn):
    if indices is None:
        return None
    if isinstance(indices, (int, np.integer)):
        return dataset[int(indices)]
    return collate_fn([dataset[int(i)] for i in indices])


class _WorkerError:
    def __init__(self, worker_id, exc):
        self.worker_id = worker_id
        self.text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.type_name = type(exc).__name__


def _worker_loop(dataset, collate_fn, index_q, result_q, worker_id, seed, init_fn, n_workers,
                 stack_path=None):
    import random
    if stack_path:  # the main process asks for our stack with SIGUSR1 when we stall
        stack_file = open(stack_path, "w")
        faulthandler.register(signal.SIGUSR1, file=stack_file, all_threads=True)
    np.random.seed((seed + worker_id) % 2**32)
    random.seed(seed + worker_id)
    _WORKER_INFO["info"] = WorkerInfo(worker_id, n_workers, seed + worker_id, dataset)
    try:
        if init_fn is not None:
            init_fn(worker_id)
    except Exception as e:  # reported for every task so the main process sees it
        err = _WorkerError(worker_id, e)
        while True:
            task = index_q.get()
            if task is None:
                return
            result_q.put((task[0], err))
    while True:
        try:
            task = index_q.get()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if task is None:
            return
        k, indices = task
        try:
            result_q.put((k, _to_numpy(_fetch(dataset, indices, collate_fn))))
        except Exception as e:
            result_q.put((k, _WorkerError(worker_id, e)))


WorkerInfo = collections.namedtuple("WorkerInfo", ["id", "num_workers", "seed", "dataset"])
_WORKER_INFO = {"info": None}


def get_worker_info():
    """In a worker process: (id, num_workers, seed, dataset); else None."""
    return _WORKER_INFO["info"]


class BatchIterator:
    """Yields collated batches (as Vars unless keep_numpy) for the index lists
    in `batches`, in order."""

    def __init__(self, dataset, batches, collate_fn=default_collate, num_workers=0,
                 prefetch_factor=2, keep_numpy=False, worker_init_fn=None, timeout=0,
                 seed=None, start_method=None, stall_timeout=None):
        self.dataset, self.batches = dataset, list(batches)
        self.collate_fn = collate_fn or default_collate
        self.num_workers, self.prefetch = int(num_workers), max(1, int(prefetch_factor))
        self.keep_numpy, self.init_fn = keep_numpy, worker_init_fn
        self.timeout = timeout if timeout and timeout > 0 else None
        # how long a batch may take before its worker is reported as stuck
        if stall_timeout is None:
            stall_timeout = self.timeout or float(os.environ.get("KILN_LOADER_STALL_TIMEOUT", 600))
        self.stall_timeout = float(stall_timeout)
        self.seed = int(np.random.randint(0, 2**31 - 1)) if seed is None else int(seed)
        self.start_method = start_method
        self._procs = []

    def __len__(self):
        return len(self.batches)

    def _out(self, b):
        return b if self.keep_numpy else to_vars(b)

    def __iter__(self):
        if self.num_workers <= 0:
            for idx in self.batches:
                yield self._out(_fetch(self.dataset, idx, self.collate_fn))
            return
        yield from self._iter_workers()

    def _context(self):
        methods = mp.get_all_start_methods()
        method = self.start_method or ("fork" if "fork" in methods else "spawn")
        return mp.get_context(method)

    def _iter_workers(self):
        ctx = self._context()
        n = min(self.num_workers, max(1, len(self.batches)))
        index_qs = [ctx.Queue() for _ in range(n)]
        result_q = ctx.Queue()
        self._procs = []
        self._stack_paths = []
        try:
            for w in range(n):
                fd, path = tempfile.mkstemp(prefix=f"kiln-worker{w}-stack-")
                os.close(fd)
                self._stack_paths.append(path)
                p = ctx.Process(target=_worker_loop, daemon=True,
                                args=(self.dataset, self.collate_fn, index_qs[w], result_q, w,
                                      self.seed, self.init_fn, n, path))
                p.start()
                self._procs.append(p)
            sent, done, ready = 0, 0, {}
            total = len(self.batches)
            while sent < min(total, n * self.prefetch):
                index_qs[sent % n].put((sent, self.batches[sent]))
                sent += 1
            while done < total:
                waiting_since = time.monotonic()
                while done not in ready:
                    k, data = self._get(result_q, done, waiting_since)
                    ready[k] = data
                data = ready.pop(done)
                if isinstance(data, _WorkerError):
                    raise RuntimeError(f"DataLoader worker {data.worker_id} failed with "
                                       f"{data.type_name}:\n{data.text}")
                done += 1
                if sent < total:
                    index_qs[sent % n].put((sent, self.batches[sent]))
                    sent += 1
                yield self._out(data)
        finally:
            self._shutdown(index_qs, result_q)

    def _get(self, result_q, batch, since):
        """The next result; batch is the one awaited since `since`."""
        while True:
            left = self.stall_timeout - (time.monotonic() - since)
            try:
                return result_q.get(timeout=max(0.01, min(left, 1.0)))
            except queue.Empty:
                dead = [p for p in self._procs if not p.is_alive()]
                if dead:
                    codes = ", ".join(f"{p.pid} (exit code {p.exitcode})" for p in dead)
                    raise RuntimeError(f"DataLoader worker(s) {codes} exited unexpectedly")
                if time.monotonic() - since >= self.stall_timeout:
                    raise self._stalled(batch) from None

    def _stalled(self, batch):
        """The error for a worker that has not delivered `batch`: its index,
        pid and Python stack (asked for with SIGUSR1)."""
        w = batch % len(self._procs)
        p, path = self._procs[w], self._stack_paths[w]
        stack = ""
        try:
            os.kill(p.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                time.sleep(0.05)
                with open(path) as f:
                    stack = f.read()
                if stack.count("File ") and stack.endswith("\n"):
                    time.sleep(0.05)
                    with open(path) as f:
                        stack = f.read()
                    break
        except OSError:
            pass
        return RuntimeError(
            f"DataLoader worker {w} (pid {p.pid}) made no progress for {self.stall_timeout:g} s "
            f"on batch {batch} (timeout= / KILN_LOADER_STALL_TIMEOUT set this); its stack:\n"
            f"{stack or '(not available)'}")

    def _shutdown(self, index_qs, result_q):
        for q in index_qs:
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        for p in self._procs:
            p.join(timeout=2)
            if p.is_alive():
                p.terminate()
                p.join(timeout=1)
        for q in index_qs + [result_q]:
            q.cancel_join_thread()
            q.close()
        self._procs = []
        for path in getattr(self, "_stack_paths", ()):
            try:
                os.unlink(path)
            except OSError:
                pass
        self._stack_paths = []
