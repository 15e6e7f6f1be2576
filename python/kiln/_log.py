"""jt.LOG (Jittor's logger): i, w, e for information, warnings and errors,
v and vv for messages shown from jt.flags.log_v 1 and 10. Messages go to
Python's logging (logger "kiln", which prints warnings and errors by
default) and, inside jt.log_capture_scope, into its list as Jittor's
records: level ('i', 'w', 'e'), verbose, file name, line number, message."""
import contextlib
import logging
import os
import sys

from ._core import state

_logger = logging.getLogger("kiln")
_captures = []   # the lists of the log_capture_scopes open now, innermost last
_LEVELS = {"i": logging.INFO, "w": logging.WARNING, "e": logging.ERROR}


def _emit(level, verbose, msg, depth=2):
    if verbose and state.log_v < verbose:
        return
    frame = sys._getframe(depth)
    record = {"level": level, "verbose": verbose, "name": os.path.basename(frame.f_code.co_filename),
              "lineno": frame.f_lineno, "msg": str(msg)}
    if _captures:
        _captures[-1].append(record)
    if getattr(state, "log_silent", 0):
        return
    _logger.log(logging.DEBUG if verbose else _LEVELS[level], "%s:%d %s", record["name"], record["lineno"],
                record["msg"])


class _Log:
    def i(self, msg):
        _emit("i", 0, msg)

    def w(self, msg):
        _emit("w", 0, msg)

    def e(self, msg):
        _emit("e", 0, msg)

    def v(self, msg):
        _emit("i", 1, msg)

    def vv(self, msg):
        _emit("i", 10, msg)

    def log_capture_read(self):
        """The records captured so far by the innermost open capture scope, taken from it."""
        if not _captures:
            return []
        records = list(_captures[-1])
        _captures[-1].clear()
        return records


LOG = _Log()


@contextlib.contextmanager
def log_capture_scope(**flag_values):
    """Collects jt.LOG's records made in the block into the list it yields
    (flags given, such as log_v=10, are set for the block)."""
    from ._flags import flag_scope
    records = []
    with flag_scope(**flag_values):
        _captures.append(records)
        try:
            yield records
        finally:
            _captures.remove(records)
