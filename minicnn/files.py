"""Safe file writing: every file minicnn writes is complete or absent, never half-written.

One rule for every writer (model files, idx pairs, ``predict --out`` CSVs,
ONNX files, study outputs and plots): the new content is written to a
temporary file next to its target, flushed and synced, then moved over the
target with ``os.replace``. A reader sees the old file whole or the new file
whole; a failed write (full disk, file-size limit, permission, Ctrl-C at any
point) leaves the old file as it was and no temporary file behind, and its
error names the user's path, never the temporary one. Only ``SIGKILL`` (or a
power cut) can leave a temporary ``.minicnn-*.tmp`` file, and even then the
target holds the old or the new content whole.

What the result looks like follows ``open(path, "wb")``: a symbolic link is
followed (its target gets the new content, the link stays), an existing file
keeps its permission bits (and its owner and group where the process may set
them), a new file gets ``0o666 & ~umask``, a read-only file (owner-write bit
clear, refused also for root) raises :class:`PermissionError`. Two cases
differ from ``open``, on purpose:

* **Hard links.** The *name* given is replaced atomically; the file's other
  hard links keep the old content (as ``rsync``, ``git`` or an editor's
  atomic save do). Copying over the shared inode would let readers of any
  name see a half-written file.
* **A writable file in a directory the process cannot create files in** is
  refused with :class:`PermissionError` (it cannot be replaced atomically).

A file that is not a regular file (a FIFO, a pipe, a character device such as
``/dev/stdout``) is never replaced: its complete content is first written to an
anonymous temporary file, then copied into it, as ``open`` would.
"""

import contextlib
import errno
import os
import signal
import stat
import tempfile
import threading

#: Prefix and suffix of the temporary files (next to their targets while a write runs).
TEMP_PREFIX, TEMP_SUFFIX = ".minicnn-", ".tmp"


def same_file(a, b):
    """True when paths ``a`` and ``b`` name one file (the same path after resolving links, or the same inode).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> same_file(path, os.path.join(os.path.dirname(path), ".", "m.npz"))
    True
    """
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def user_path(path):
    """``path`` (str, bytes or os.PathLike) as a str, decoded as the OS does: the name errors report."""
    return os.fsdecode(os.fspath(path))


def _umask():
    """The process umask: from ``/proc/self/status`` where it exists (thread-safe), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _naming(exc, path):
    """An ``OSError`` raised on a temporary file, raised again naming the user's ``path`` as ``open`` would."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return type(exc)(exc.errno, exc.strerror, path)
    return exc


@contextlib.contextmanager
def _no_interrupt():
    """Hold Ctrl-C (SIGINT) back for a few bookkeeping steps; its KeyboardInterrupt is raised right after.

    Used where an interruption would leak a temporary file (between its
    creation and its registration, between ``os.replace`` and the cleanup).
    The Python handler is swapped for one that only records the signal (a
    signal mask would not do: any native thread, e.g. a BLAS worker, may
    receive the signal and CPython raises it in the main thread anyway).
    Only the main thread receives KeyboardInterrupt, so other threads need
    no protection.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    received = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if received:
            if callable(old):
                old(signal.SIGINT, None)
            elif old == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)


def writable_target(path):
    """The file ``open(path, "wb")`` would write, its mode, and its ``os.stat`` (None when new).

    Symbolic links are followed, an existing file keeps its permission bits,
    a new file gets ``0o666 & ~umask``. An existing file that cannot be
    opened for writing, or whose owner-write bit is clear, raises
    :class:`PermissionError`. A path ending in a separator raises what
    ``open`` raises for it (:class:`IsADirectoryError` or
    :class:`NotADirectoryError`). An existing file that is not a regular file
    (a FIFO, a character device such as ``/dev/stdout``) is returned as given,
    with mode None: it is written in place, never replaced. A missing
    directory raises :class:`FileNotFoundError` naming ``path``.
    """
    user = user_path(path)
    if user.endswith(os.sep) or (os.altsep and user.endswith(os.altsep)):
        with open(user, "ab"):   # O_CREAT with a trailing separator never creates a file: this raises
            pass
        raise IsADirectoryError(errno.EISDIR, "Is a directory", user)   # pragma: no cover - open raised
    try:
        st = os.stat(user)   # follows links, also /proc/self/fd/N links to pipes that realpath cannot name
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        return user, None, st
    target = os.path.realpath(user)
    if st is None:
        directory = os.path.dirname(target) or "."
        if not os.path.isdir(directory):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", user)
        return target, 0o666 & ~_umask(), None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", user)
    if not st.st_mode & stat.S_IWUSR:
        raise PermissionError(errno.EACCES, f"Permission denied: the file is read-only "
                                            f"(mode {stat.S_IMODE(st.st_mode):04o})", user)
    os.close(os.open(target, os.O_WRONLY))   # raises PermissionError exactly where open(path, "wb") would
    return target, stat.S_IMODE(st.st_mode), st


def _open_temp(fd):
    """The file object a :class:`Staged` writes its temporary file through."""
    return os.fdopen(fd, "w+b")


class Staged:
    """A complete new file for ``path``, written by ``write(file)`` but not yet in place.

    ``write`` receives a binary file object. :meth:`commit` puts the new file
    in place (see the module docstring), :meth:`discard` removes it; either
    closes it. A failure while writing discards it and raises, every
    ``OSError`` naming ``path``. Used directly to stage several files before
    putting any in place (:func:`minicnn.datasets.save_idx`).
    """

    def __init__(self, path, write):
        self.path = user_path(path)
        self.target, mode, st = writable_target(path)
        self.in_place = mode is None
        self.tmp = self.file = None
        try:
            with _no_interrupt():
                if self.in_place:   # not a regular file: the complete content waits in an anonymous file
                    self.file = tempfile.TemporaryFile()
                else:
                    fd, self.tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX,
                                                    dir=os.path.dirname(self.target))
                    self.file = _open_temp(fd)
        except PermissionError as exc:
            self.discard()
            if st is None:
                raise _naming(exc, self.path) from None
            raise PermissionError(errno.EACCES, f"Permission denied: directory {os.path.dirname(self.target)!r} "
                                                f"is not writable, so the file cannot be replaced atomically",
                                  self.path) from None
        except BaseException as exc:
            self.discard()
            raise _naming(exc, self.path) from None
        try:
            write(self.file)
            self.file.flush()
            if not self.in_place:
                os.fchmod(self.file.fileno(), mode)
                if st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                    with contextlib.suppress(PermissionError):
                        os.fchown(self.file.fileno(), st.st_uid, st.st_gid)
                os.fsync(self.file.fileno())
        except BaseException as exc:
            self.discard()
            raise _naming(exc, self.path) from None

    def commit(self):
        """Put the new file in place (then it is closed)."""
        try:
            if self.in_place:
                self.file.seek(0)
                with open(self.target, "wb") as out:
                    while chunk := self.file.read(1 << 20):
                        out.write(chunk)
                self.discard()
                return
            with _no_interrupt():
                self.file.close()
                os.replace(self.tmp, self.target)
                self.tmp = None
            _sync_directory(os.path.dirname(self.target))
        except BaseException as exc:
            self.discard()
            raise _naming(exc, self.path) from None

    def discard(self):
        """Remove the new file (the target is left as it was). Never raises an ``OSError`` of its own."""
        with _no_interrupt():
            if self.tmp is not None:   # first: a close() that fails (full disk) must not keep the file
                with contextlib.suppress(OSError):
                    os.unlink(self.tmp)
                self.tmp = None
            if self.file is not None:
                with contextlib.suppress(Exception):   # flushing a full disk's buffer raises again: ignored
                    self.file.close()


def _sync_directory(directory):
    """Make a rename durable (best effort: some file systems refuse to open or sync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path, write):
    """Call ``write(file)`` on a new binary file for ``path`` and put it in place (see the module docstring).

    Parameters
    ----------
    path : str, bytes or os.PathLike
    write : callable
        ``write(file)``: writes the complete content to the binary file object.

    Raises
    ------
    OSError
        As ``open(path, "wb")`` would (naming ``path``), or a failure while
        writing (``ENOSPC``, ``EFBIG``): the old file is left whole.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> atomic_write(path, lambda f: f.write(b"complete"))
    >>> open(path, "rb").read()
    b'complete'
    """
    Staged(path, write).commit()


def write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def write_text(path, text, encoding="utf-8", newline=None):
    """Write ``text`` to ``path`` atomically, encoded as ``open(path, "w", encoding, newline)`` would write it."""
    newline = os.linesep if newline is None else newline
    write_bytes(path, (text.replace("\n", newline) if newline and newline != "\n" else text).encode(encoding))


def _backup(target):
    """A hard link to the current ``target`` under a temporary name next to it, or None (no file, no link support)."""
    name = os.path.join(os.path.dirname(target), f"{TEMP_PREFIX}{os.urandom(6).hex()}.bak")
    try:
        os.link(target, name)
    except OSError:
        return None
    return name


def commit_together(staged, journal=None, journal_text=""):
    """Put several :class:`Staged` files in place together: all of them, or (on an error) none.

    Each file is replaced atomically; between the replacements the old
    content of the files already replaced is kept as a hard link, and an
    error puts it back (a file that did not exist is removed again). Only a
    kill (``SIGKILL``, a power cut) between two replacements can leave some
    files new and others old: for that case ``journal`` (a path) is written
    first with ``journal_text`` and removed once every file is in place, so a
    reader finding it knows the set may be mixed.

    Parameters
    ----------
    staged : list of Staged
    journal : str or None
    journal_text : str
    """
    done = []   # (staged, backup or None, existed)
    try:
        if journal is not None:
            write_text(journal, journal_text)
        for s in staged:
            existed = not s.in_place and os.path.exists(s.target)
            backup = _backup(s.target) if existed else None
            done.append((s, backup, existed))
            s.commit()
    except BaseException:
        with _no_interrupt():
            restored = True
            for s, backup, existed in done[:-1]:   # the last one failed: its target is as it was
                try:
                    if backup is not None:
                        os.replace(backup, s.target)
                    elif existed:
                        restored = False   # no link to the old content: the journal stays to say so
                    elif not s.in_place:
                        os.unlink(s.target)
                except OSError:
                    restored = False
            for s, backup, _ in done:
                if backup is not None and os.path.lexists(backup):
                    with contextlib.suppress(OSError):
                        os.unlink(backup)
            for s in staged:
                s.discard()
            if journal is not None and restored:
                with contextlib.suppress(OSError):
                    os.unlink(journal)
        raise
    with _no_interrupt():
        for _, backup, _ in done:
            if backup is not None:
                with contextlib.suppress(OSError):
                    os.unlink(backup)
        if journal is not None:
            with contextlib.suppress(OSError):
                os.unlink(journal)
