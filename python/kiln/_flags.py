"""jt.flags, jt.flag_scope and the process-level calls: sync, sync_all, gc,
counters and display_memory_info."""
import functools
import gc as _pygc

from . import _C
from ._core import state, to_var

__all__ = ["flags", "flag_scope", "sync", "sync_all", "gc", "counters", "display_memory_info",
           "fetch_sync", "clean"]


def _stored(name, default, doc):
    """A flag kiln keeps (in state) for programs that set and read it."""
    def get(self):
        return getattr(state, name, default)

    def put(self, v):
        setattr(state, name, type(default)(v))
    return property(get, put, doc=doc)


class _Flags:
    """Jittor's jt.flags: lazy_execution, log_level, log_v, use_cuda, no_grad,
    check_indices, cache_dir/cache_path, profiler_enable,
    auto_convert_64_to_32, log_silent, and the flags Jittor programs set that
    kiln has no use for (kept, documented, without effect). Setting a name it
    does not have raises AttributeError."""

    __slots__ = ()

    amp_reg = _stored("amp_reg", 0, "Jittor's mixed-precision register bits, which choose the dtype "
                      "of half-precision results (kiln/_amp.py): bit 4 keeps sums and means of "
                      "float16/bfloat16 in half (else float32), bit 8 keeps exp/log/pow in half, "
                      "bit 16 makes float32 arrays and random data float16. Kernels compute half "
                      "values in float32 either way.")
    amp_level = _stored("amp_level", 0, "Jittor's mixed-precision level: 3 or more keeps half-precision "
                        "results in half, as amp_reg's bits 4 and 8 do.")
    auto_mixed_precision_level = _stored("auto_mixed_precision_level", 0,
                                         "Jittor's older name for amp_level: kept without effect.")
    use_tensorcore = _stored("use_tensorcore", 0, "CUDA tensor cores: kept without effect (no GPU backend).")
    use_stat_allocator = _stored("use_stat_allocator", 0, "Jittor's allocator statistics switch: kept "
                                 "without effect; kiln's allocator always counts (jt.counters(), "
                                 "stat_allocator_total_alloc_byte).")

    @property
    def stat_allocator_total_alloc_byte(self):
        """Bytes the allocator has handed out since the process started."""
        return _C.counters()["bytes_allocated"]

    @property
    def stat_allocator_total_free_byte(self):
        """Bytes handed out and since given back: alloc - free is what is in use."""
        c = _C.counters()
        return c["bytes_allocated"] - c["bytes_in_use"]
    log_vprefix = _stored("log_vprefix", "", "Jittor's per-source-file verbosity (\"op.cc=100\"): kept "
                          "without effect; kiln's log has no per-file levels (log_v applies).")
    compile_options = _stored("compile_options", {}, "Jittor's per-kernel loop transforms and "
                              "compiler options (split/order/unroll/vectorize, \"FLAGS: ...\"): "
                              "kept without effect; kiln's renderer chooses its own loop "
                              "structure and compiles every kernel with the same flags.")
    log_silent = _stored("log_silent", 0, "1: jt.LOG's records are not printed (a log_capture_scope "
                         "still collects them).")
    auto_convert_64_to_32 = _stored("auto_convert_64_to_32", 0,
                                    "1: jt.array turns float64 and int64 NumPy data into float32 "
                                    "and int32 (Jittor's default); 0 (kiln's default): dtypes kept.")

    @property
    def profiler_enable(self):
        """1 while kiln records each kernel's time (jt.profile_scope turns it on)."""
        return int(_C.profile_enabled())

    @profiler_enable.setter
    def profiler_enable(self, v):
        _C.profile_enable(bool(v))

    @property
    def cache_path(self):
        """The kernel cache folder (Jittor's name for cache_dir)."""
        return _C.cache_dir()

    @property
    def lazy_execution(self):
        return int(state.lazy)

    @lazy_execution.setter
    def lazy_execution(self, v):
        state.lazy = bool(v)

    @property
    def log_level(self):
        return _C.get_debug()

    @log_level.setter
    def log_level(self, v):
        _C.set_debug(max(0, int(v)))

    @property
    def log_v(self):
        """Verbosity of jt.LOG.v (shown from 1) and LOG.vv (from 10); KILN_LOG_V sets the start."""
        return state.log_v

    @log_v.setter
    def log_v(self, v):
        state.log_v = int(v)

    @property
    def use_cuda(self):
        return int(_C.device() == "cuda")

    @use_cuda.setter
    def use_cuda(self, v):
        _C.set_device("cuda" if v else "cpu")  # without a usable device, the error says what is missing

    @property
    def no_grad(self):
        return int(not state.grad_enabled)

    @no_grad.setter
    def no_grad(self, v):
        state.grad_enabled = not v

    @property
    def check_indices(self):
        """1 (default; KILN_CHECK_INDICES=0 starts with 0): index vars read by
        getitem, Embedding and cross-entropy are checked, and an out-of-range
        value raises IndexError at the sync; 0 skips the check (such values
        then read 0)."""
        return int(state.check_indices)

    @check_indices.setter
    def check_indices(self, v):
        state.check_indices = bool(v)

    @property
    def cache_dir(self):
        return _C.cache_dir()

    @cache_dir.setter
    def cache_dir(self, v):
        _C.cache_dir(str(v))

    def __repr__(self):
        names = ("lazy_execution", "log_level", "log_v", "use_cuda", "no_grad", "check_indices", "cache_dir",
                 "profiler_enable", "auto_convert_64_to_32", "log_silent", "amp_reg")
        return "jt.flags(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"


flags = _Flags()


class flag_scope:
    """Sets jt.flags for a block and restores them after (Jittor's
    jt.flag_scope): a context manager, and a decorator that does the same
    around each call."""

    def __init__(self, **values):
        for name in values:
            if not isinstance(getattr(type(flags), name, None), property):
                raise AttributeError(f"flag_scope: jt.flags has no flag {name!r}")
        self._values = values
        self._saved = []

    def __enter__(self):
        old = {name: getattr(flags, name) for name in self._values}
        self._saved.append(old)
        try:
            for name, value in self._values.items():
                setattr(flags, name, value)
        except BaseException:
            self._restore()
            raise
        return self

    def _restore(self):
        for name, value in self._saved.pop().items():
            setattr(flags, name, value)

    def __exit__(self, *exc):
        self._restore()
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with flag_scope(**self._values):
                return fn(*args, **kwargs)
        return wrapped


def sync(vars):
    """Computes the listed vars together (as few kernels as fusion allows)."""
    vs = [to_var(v) for v in vars]
    _C.sync(vs)
    return vs


def sync_all(device_sync=False):
    """Computes every pending var that a Var (or another handle) holds; with
    device_sync, also waits until the device has finished them (a GPU runs
    kernels asynchronously)."""
    _C.sync_all()
    if device_sync:
        _C.synchronize()


def gc():
    """Frees unreachable vars and returns cached memory to the system."""
    _pygc.collect()
    _C.gc()


def clean():
    """Jittor's jt.clean(): frees what no live Var can reach and the cached
    memory (kiln frees unreachable graph parts at once, so this is jt.gc())."""
    gc()


def fetch_sync(vars):
    """The vars' values as NumPy arrays, computed together (Jittor's jt.fetch_sync)."""
    vs = sync(vars)
    return [v.numpy() for v in vs]


def counters():
    """The core's counters: kernels compiled/launched, cache hits, bytes, live vars."""
    return _C.counters()


def display_memory_info():
    c = _C.counters()
    mib = 1 / 2**20
    print("=== kiln memory info ===\n"
          f"vars alive:        {c['vars_alive']}\n"
          f"bytes in use:      {c['bytes_in_use'] * mib:.3f} MiB\n"
          f"bytes cached:      {c['bytes_cached'] * mib:.3f} MiB\n"
          f"peak bytes in use: {c['peak_bytes_in_use'] * mib:.3f} MiB\n"
          f"bytes allocated:   {c['bytes_allocated'] * mib:.3f} MiB (total)\n"
          f"kernels: {c['kernels_compiled']} compiled, {c['cache_hits_memory']} memory hits, "
          f"{c['cache_hits_disk']} disk hits, {c['kernels_launched']} launched")
    return c
