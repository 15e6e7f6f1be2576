"""The one timing rule of the benchmarks, free of imports (bench/mpi.py's
ranks time with it without loading PyTorch or fixing the thread count)."""
import statistics
import time


def median_time(fn, repeat=20, warmup=3):
    """Median wall time of fn() in seconds; fn must finish its own work (read a result)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
