"""One study at a time per output directory: an exclusive ``flock`` on the directory itself.

Two ``minicnn study`` runs on the same ``--out`` would both train every run and
append to one ``runs.csv`` (each skips only what was finished when it started).
The study holds an exclusive, non-blocking ``fcntl.flock`` on the directory's
own file descriptor from the moment it exists until the study returns; a
second study there is refused at once with a ``ValueError`` naming the option
and the directory. No lock file is written (nothing is left behind, and a
killed study's lock goes with its process). On systems without ``fcntl``
nothing is locked.
"""

import contextlib
import contextvars
import functools
import os

try:
    import fcntl
except ImportError:   # pragma: no cover - not POSIX
    fcntl = None

_HELD = contextvars.ContextVar("minicnn_study_out_lock", default=None)


class OutLock:
    """The lock of one study's output directory (taken by :meth:`acquire` once the directory exists)."""

    def __init__(self):
        self.fd = None

    def acquire(self, out_dir, option="--out"):
        """Lock ``out_dir`` if it exists and is not locked by this study yet; refuse if another study holds it."""
        if self.fd is not None or fcntl is None or not os.path.isdir(out_dir):
            return
        fd = os.open(out_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ValueError(f"{option} {out_dir}: another minicnn study is running in this directory (it holds "
                             f"the directory's lock); wait for it to finish, or choose another {option}") from None
        self.fd = fd

    def release(self):
        if self.fd is not None:
            os.close(self.fd)   # closing the descriptor releases the flock
            self.fd = None


def holding_out_lock(function):
    """Run ``function`` with a fresh :class:`OutLock` that :func:`lock_out` takes; released when it returns."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        lock = OutLock()
        token = _HELD.set(lock)
        try:
            return function(*args, **kwargs)
        finally:
            _HELD.reset(token)
            lock.release()
    return wrapper


def lock_out(out_dir, option="--out"):
    """Take the running study's lock on ``out_dir`` (see :class:`OutLock`); a no-op outside a study."""
    lock = _HELD.get()
    if lock is not None:
        lock.acquire(out_dir, option)
