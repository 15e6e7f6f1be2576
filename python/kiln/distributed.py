"""Data parallelism over MPI: the same script, launched with
``mpirun -np N python3 train.py``, trains on N processes.

Under mpirun kiln joins the job at import (OpenMPI loaded with dlopen):
``jt.in_mpi`` is True, ``jt.rank``/``jt.world_size`` say where this process
stands, and then

- an optimiser broadcasts the parameters from rank 0 when it is made and
  averages the gradients across ranks (in few large buckets) before each step;
- a Dataset (and a DataLoader without a sampler) gives each rank its share
  of every global batch, from one shuffle all ranks agree on: each sample is
  seen once per epoch and ``batch_size`` is the global batch;
- ``BatchNorm(sync=True)`` (the default, as in Jittor; ``nn.SyncBatchNorm``)
  normalises with the statistics of the global batch;
- only rank 0 shows progress bars and writes ``jt.save``/``Module.save``
  files (``all_ranks=True`` writes from every rank);
- an uncaught exception on any rank ends the whole job (MPI_Abort) after
  printing the rank and the traceback, so the other ranks never hang.

The collectives are lazy ops that run at sync, in graph order: every rank
must compute the same collectives in the same order. Without mpirun this
is a world of one rank and each collective is the identity."""
import atexit
import os
import sys
import traceback

from . import _C

__all__ = ["in_mpi", "rank", "world_size", "local_rank", "local_size", "mpi_all_reduce",
           "mpi_reduce", "mpi_broadcast", "barrier", "MPI"]

in_mpi = "OMPI_COMM_WORLD_SIZE" in os.environ
rank, world_size, local_rank, local_size = _C.mpi_start()

_OPS = {"add": "sum", "sum": "sum", "mean": "mean", "max": "max", "maximum": "max", "min": "min",
        "minimum": "min"}


def _op(op, fn):
    try:
        return _OPS[op]
    except (KeyError, TypeError):
        raise ValueError(f"{fn}: op must be 'add', 'mean', 'max' or 'min', got {op!r}") from None


def _var(x):
    from ._core import to_var
    return to_var(x)


def mpi_all_reduce(x, op="add"):
    """Every rank gets op over all ranks' x (add, mean, max, min); its
    gradient is the same all-reduce of the gradient (add and mean)."""
    from ._core import out
    x = _var(x)
    return out(_C.mpi_all_reduce(x, _op(op, "mpi_all_reduce")), x)


def mpi_reduce(x, op="add", root=0):
    """The root gets op over all ranks' x, the other ranks zeros; the
    gradient is the root's gradient broadcast."""
    from ._core import out
    x = _var(x)
    return out(_C.mpi_reduce(x, _op(op, "mpi_reduce"), int(root)), x)


def mpi_broadcast(x, root=0):
    """Every rank gets the root's x; the gradient is every rank's gradient
    summed at the root."""
    from ._core import out
    x = _var(x)
    return out(_C.mpi_broadcast(x, int(root)), x)


BUCKET_BYTES = 25 << 20
MAX_BUCKET = 10   # vars per call (the core's KL_MPI_MAX_BUCKET)


def mpi_all_reduce_many(xs, op="add"):
    """The all_reduce of up to 10 vars of one dtype in one MPI call: a flat
    Var of their elements one after another."""
    from ._core import out
    xs = [_var(x) for x in xs]
    return out(_C.mpi_all_reduce_many(xs, _op(op, "mpi_all_reduce_many")), *xs)


def all_reduce_bucketed(xs, op="mean"):
    """Each var of xs all-reduced, in buckets of one dtype (at most
    MAX_BUCKET vars, about BUCKET_BYTES) so that a model's gradients take a
    few large MPI calls instead of one small call each; the results come
    back in xs's order and shapes."""
    from ._shape import reshape
    results = [None] * len(xs)
    bucket, nbytes = [], 0

    def flush():
        if not bucket:
            return
        flat = mpi_all_reduce_many([xs[i] for i in bucket], op)
        at = 0
        for i in bucket:
            n = xs[i].numel()
            results[i] = reshape(flat[at:at + n], xs[i].shape)
            at += n
        bucket.clear()

    for dt in dict.fromkeys(x.dtype for x in xs):
        for i, x in enumerate(xs):
            if x.dtype != dt:
                continue
            size = x.numel() * x.dtype.itemsize
            if bucket and (len(bucket) == MAX_BUCKET or nbytes + size > BUCKET_BYTES):
                flush()
                nbytes = 0
            bucket.append(i)
            nbytes += size
        flush()
        nbytes = 0
    return results


def agreed_order(order):
    """Rank 0's copy of an index order (a shuffle drawn on every rank), so
    that all ranks split the same epoch."""
    import numpy as np
    from ._core import array
    if world_size == 1:
        return order
    return mpi_broadcast(array(np.asarray(order, dtype=np.int64)), 0).numpy()


def shard_batches(batches):
    """This rank's part of each global batch (index arrays): every rank gets
    as many batches, each sample goes to one rank, and a last batch too
    small to give every rank a sample joins the one before it."""
    import numpy as np
    if world_size == 1 or not batches:
        return batches
    batches = [np.asarray(b) for b in batches]
    if len(batches) > 1 and len(batches[-1]) < world_size:
        batches = batches[:-2] + [np.concatenate(batches[-2:])]
    if len(batches[-1]) < world_size:
        raise ValueError(f"a batch of {len(batches[-1])} samples cannot be shared by "
                         f"{world_size} ranks: use a larger dataset or batch size")
    return [np.array_split(b, world_size)[rank] for b in batches]


def shared_batch_count(n_batches, last_batch):
    """How many batches shard_batches leaves of n_batches whose last has
    last_batch samples."""
    if world_size > 1 and n_batches > 1 and last_batch < world_size:
        return n_batches - 1
    return n_batches


def barrier():
    """Waits until every rank gets here."""
    _C.mpi_barrier()


class MPI:
    """Jittor's ``jt.mpi`` (None outside mpirun): where this process stands,
    and the collectives on NumPy arrays or Vars."""

    def world_rank(self):
        return rank

    def world_size(self):
        return world_size

    def local_rank(self):
        return local_rank

    def local_size(self):
        return local_size

    def barrier(self):
        barrier()

    def broadcast(self, x, root=0):
        """x (a NumPy array, filled in place, or a Var: the result is returned)
        as the root has it."""
        return self._numpy_or_var(x, lambda v: mpi_broadcast(v, root))

    def all_reduce(self, x, op="add"):
        return self._numpy_or_var(x, lambda v: mpi_all_reduce(v, op))

    @staticmethod
    def _numpy_or_var(x, collective):
        import numpy as np
        if isinstance(x, np.ndarray):
            x[...] = collective(_var(x)).numpy()
            return x
        return collective(x)


def _abort_on_error(kind, value, tb):
    """sys.excepthook under mpirun: the other ranks would wait for this one
    forever in their next collective, so the job ends here, naming the rank."""
    text = "".join(traceback.format_exception(kind, value, tb))
    try:
        sys.stderr.flush()
    finally:
        _C.mpi_abort(1, f"kiln: rank {rank} of {world_size} failed:\n{text}"
                        f"kiln: rank {rank} ends the MPI job")


if in_mpi:
    if world_size > 1:
        sys.excepthook = _abort_on_error
    atexit.register(_C.mpi_finish)
