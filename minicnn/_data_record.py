"""The data record of a model written by ``minicnn fit``: which data it named, so ``minicnn evaluate`` and
``minicnn mc-report`` find the same held-out images without being told again (imports nothing heavy: the
Predictor's loader reads it).

Besides the options as typed, the record keeps each data file's absolute path and a cheap content fingerprint
(size and modification time; a SHA-256 too for files up to :data:`HASHED_BYTES`; for a ``folder:``, over the files
its reader reads, their count, total size, newest modification time and a hash of their listing), so scoring later
data that is another file (the same relative path from another working directory) or a changed one is said, not
silently done.

An edit that keeps a file's size and puts its modification time back (``touch -r``, ``os.utime``, an editor
restoring it) is caught as ``git`` catches it: the entry also keeps the newest status-change time (``ctime_ns``,
which the kernel sets on every write or rename and no call can set back). It is compared only where no content
hash decides (a folder's files, a file larger than :data:`HASHED_BYTES`) and only for data read in place: a copy
(the data moved with its model) has new status-change times, and is compared by its fingerprint alone. Its only
false alarm is a change of the files' metadata (permissions, owner, links), which the warning names. The images
are not hashed: reading every file of a folder on each ``evaluate`` would cost as much as decoding it.
Model files written before the fingerprints (no ``files`` key), or before ``ctime_ns``, still load.
"""

import hashlib
import os

#: The keys of the data record (how ``minicnn fit`` named its data): ``fit --data``, ``--test-data``,
#: ``--test-size`` and ``--seed``; a model file may hold it as the header key ``"data"``.
DATA_KEYS = ("data", "test_data", "test_size", "seed")
#: Optional key: one entry per data file (:func:`file_entry`).
FILES_KEY = "files"
#: Files up to this size are hashed (SHA-256) as well as sized and dated.
HASHED_BYTES = 1 << 20
_ENTRY_KEYS = {"option", "typed", "path", "size", "mtime_ns", "count", "sha256"}
#: Keys of an entry that records written before them lack.
_OPTIONAL_KEYS = {"ctime_ns"}
_BUILT_IN = ("digits", "mnist", "fashion-mnist")


def spec_paths(spec):
    """The files or folders a ``--data`` / ``--test-data`` value reads, as typed (none for built-in sets)."""
    if spec is None or spec in _BUILT_IN:
        return []
    if spec.startswith("idx:"):
        return [p for p in spec[4:].split(",") if p]
    if spec.startswith("folder:"):
        return [spec[7:]] if spec[7:] else []
    return [spec]


def fingerprint(path):
    """``{"size", "mtime_ns", "count", "sha256", "ctime_ns"}`` of a file or a folder (see the module's docstring)."""
    if os.path.isdir(path):
        listing, size, newest, changed, count = hashlib.sha256(), 0, 0, 0, 0
        for full in _folder_files(path):
            try:
                stat = os.stat(full)
            except OSError:
                continue
            count, size, newest = count + 1, size + stat.st_size, max(newest, stat.st_mtime_ns)
            changed = max(changed, stat.st_ctime_ns)
            listing.update(f"{os.path.relpath(full, path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode(
                "utf-8", "surrogateescape"))
        return {"size": size, "mtime_ns": newest, "count": count, "sha256": listing.hexdigest(), "ctime_ns": changed}
    stat = os.stat(path)
    digest = None
    if stat.st_size <= HASHED_BYTES:
        with open(path, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "count": 1, "sha256": digest,
            "ctime_ns": stat.st_ctime_ns}


def _folder_files(path):
    """The files of a ``folder:`` the reader reads (its class subfolders' files, symbolic links followed, hidden
    files left out: ``minicnn.images.list_folder``); every file under it when the reader refuses the folder."""
    from .images import ImageFileError, list_folder   # only when a folder is fingerprinted (Pillow stays lazy)

    try:
        return list_folder(path)[0]
    except ImageFileError:
        found = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            found += [os.path.join(root, name) for name in sorted(files)]
        return found


def file_entries(option, spec):
    """The record entries of the files of ``option spec`` (those it cannot stat are left out)."""
    entries = []
    for typed in spec_paths(spec):
        try:
            entries.append({"option": option, "typed": typed, "path": os.path.abspath(typed), **fingerprint(typed)})
        except OSError:
            continue
    return entries


def make_record(data, test_data, test_size, seed):
    """The data record of a ``minicnn fit`` run: the options as typed and each data file's fingerprint.

    Examples
    --------
    >>> make_record("digits", None, 0.2, 0)
    {'data': 'digits', 'test_data': None, 'test_size': 0.2, 'seed': 0}
    """
    record = {"data": data, "test_data": test_data, "test_size": float(test_size), "seed": int(seed)}
    files = file_entries("--data", data) + file_entries("--test-data", test_data)
    return dict(record, **{FILES_KEY: files}) if files else record   # built-in data sets: nothing to fingerprint


def _entry_problem(entry):
    if not (isinstance(entry, dict) and _ENTRY_KEYS <= set(entry) <= _ENTRY_KEYS | _OPTIONAL_KEYS):
        return (f"expected file entries with keys {sorted(_ENTRY_KEYS)} (and optionally {sorted(_OPTIONAL_KEYS)}), "
                f"found {str(entry)[:200]}")
    texts = all(isinstance(entry[k], str) for k in ("option", "typed", "path"))
    ints = all(isinstance(entry[k], int) and not isinstance(entry[k], bool) and entry[k] >= 0
               for k in ("size", "mtime_ns", "count") + tuple(k for k in _OPTIONAL_KEYS if k in entry))
    if not (texts and ints and (entry["sha256"] is None or isinstance(entry["sha256"], str))):
        return f"a file entry has values of the wrong type: {str(entry)[:200]}"
    return None


def data_record_problem(record):
    """What is wrong with a model file's data record (a sentence), or None."""
    if not (isinstance(record, dict) and set(DATA_KEYS) <= set(record) <= set(DATA_KEYS) | {FILES_KEY}):
        return f"expected an object with keys {list(DATA_KEYS)} (and optionally {FILES_KEY!r}), found {str(record)[:200]}"
    if not isinstance(record["data"], str) or not (record["test_data"] is None or isinstance(record["test_data"], str)):
        return "data must be a string and test_data a string or null"
    size, seed = record["test_size"], record["seed"]
    if not (isinstance(size, float) and 0 < size < 1 and isinstance(seed, int) and not isinstance(seed, bool)
            and 0 <= seed < 2**32):
        return f"test_size must be a float in (0, 1) and seed an int in [0, 2**32), found {size!r}, {seed!r}"
    files = record.get(FILES_KEY, [])
    if not isinstance(files, list):
        return f"{FILES_KEY} must be a list, found {str(files)[:200]}"
    return next((p for p in map(_entry_problem, files) if p is not None), None)


def recorded_data(model):
    """The data record of a loaded model (estimator or Predictor), or None."""
    return getattr(model, "_data_record", None)


def same_path(record, option, spec):
    """Whether ``option spec`` names the files the record's ``option`` named (by absolute path; a record
    without fingerprints compares the options as typed)."""
    entries = [e for e in (record or {}).get(FILES_KEY, []) if e["option"] == option]
    typed = record.get("data" if option == "--data" else "test_data") if record else None
    if not entries:
        return spec == typed
    return [os.path.abspath(p) for p in spec_paths(spec)] == [e["path"] for e in entries]


def data_changes(model, option, spec):
    """Sentences saying how the files of ``option spec`` differ from those ``minicnn fit`` read (empty when the
    model has no fingerprints, or the files are the same)."""
    record = recorded_data(model)
    entries = [e for e in (record or {}).get(FILES_KEY, []) if e["option"] == option]
    if not entries or spec is None or spec in _BUILT_IN:
        return []
    paths = [os.path.abspath(p) for p in spec_paths(spec)]
    typed = record["data" if option == "--data" else "test_data"]
    if paths != [e["path"] for e in entries]:
        if len(paths) == len(entries) and all(_differences(e, path) == [] for e, path in zip(entries, paths)):
            return []   # the files the fit read, moved (or copied with their dates)
        if typed is not None and spec_paths(spec) == [e["typed"] for e in entries]:
            return [f"{option} {spec} is not the data 'minicnn fit' read: typed the same, it now names "
                    f"{', '.join(paths)} where the fit read {', '.join(e['path'] for e in entries)} (another working "
                    f"directory?)"]
        return []   # other data, named otherwise: the user chose it
    changes = []
    for entry, path in zip(entries, paths):
        differs = _differences(entry, path, in_place=True)
        if differs:
            changes.append(f"{option} {spec}: {path} changed since 'minicnn fit' read it ({', '.join(differs)} "
                           f"differ), so the scores are not those of the data the model was fitted and tested on")
    return changes


def _differences(entry, path, in_place=False):
    """What differs between the file or folder at ``path`` and the record ``entry`` (a list of words; empty when
    they agree); None when ``path`` cannot be read. ``in_place``: ``path`` is the one the entry records, so its
    status-change time is compared too where no content hash decides (see the module's docstring)."""
    try:
        now = fingerprint(path)
    except OSError:
        return None
    differs = [k for k in ("count", "size", "sha256") if entry[k] is not None and now[k] != entry[k]]
    if not differs and now["mtime_ns"] != entry["mtime_ns"] and entry["sha256"] is None:
        differs = ["modification time"]
    hashed = entry["sha256"] is not None and entry["count"] == 1 and not os.path.isdir(path)
    if not differs and in_place and not hashed and entry.get("ctime_ns", now["ctime_ns"]) != now["ctime_ns"]:
        differs = ["status-change time: rewritten in place with its size and modification time kept, or its "
                   "permissions, owner or links changed"]
    return differs


def warn_if_changed(model, data, test_data):
    """One UserWarning per changed data file of ``--data`` / ``--test-data`` (see :func:`data_changes`)."""
    import warnings

    for option, spec in (("--data", data), ("--test-data", test_data)):
        for sentence in data_changes(model, option, spec):
            warnings.warn(sentence, UserWarning, stacklevel=3)
