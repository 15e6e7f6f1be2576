"""A progress bar for long loops: tqdm when it can be imported, else a plain
one-line bar on stderr. progress(iterable) decides by itself whether to show
(stderr is a terminal and the loop is long) unless told with enabled=."""
import os
import sys
import time

__all__ = ["progress"]

AUTO_MIN_STEPS = 50


def _want(enabled, total):
    if enabled is not None:
        return bool(enabled)
    from . import distributed
    if distributed.rank != 0:   # one bar per job, not one per rank
        return False
    if os.environ.get("KILN_PROGRESS") is not None:
        return os.environ["KILN_PROGRESS"] not in ("", "0")
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and (total is None or total >= AUTO_MIN_STEPS)


class _Plain:
    """What tqdm does, minimally: 'desc  37/120 [####......]  1.2 it/s'."""

    def __init__(self, iterable, total, desc, stream=None, min_interval=0.25):
        self.iterable, self.total, self.desc = iterable, total, desc
        self.stream = stream or sys.stderr
        self.min_interval = min_interval

    def _draw(self, n, start, final=False):
        dt = max(time.time() - start, 1e-9)
        rate = n / dt
        if self.total:
            width = 24
            filled = int(width * n / self.total)
            bar = f"{n}/{self.total} [{'#' * filled}{'.' * (width - filled)}]"
        else:
            bar = f"{n}"
        line = f"\r{self.desc + ': ' if self.desc else ''}{bar} {rate:.1f} it/s"
        self.stream.write(line + ("\n" if final else ""))
        self.stream.flush()

    def __iter__(self):
        start = last = time.time()
        n = 0
        for item in self.iterable:
            yield item
            n += 1
            now = time.time()
            if now - last >= self.min_interval:
                self._draw(n, start)
                last = now
        self._draw(n, start, final=True)

    def __len__(self):
        return self.total


def progress(iterable, total=None, desc=None, enabled=None, plain=False):
    """iterable, wrapped in a progress bar when one is wanted."""
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    if not _want(enabled, total):
        return iterable
    if not plain:
        try:
            from tqdm import tqdm
            return tqdm(iterable, total=total, desc=desc, leave=False)
        except ImportError:
            pass
    return _Plain(iterable, total, desc)
