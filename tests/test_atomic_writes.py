"""Every file minicnn writes is complete or absent: every writer x every failure (minicnn.files).

Writers: a model file (estimator save), a ``predict --out`` CSV, an ONNX export, an idx pair, study outputs (text)
and plots. Failures: a full disk (a write raising ENOSPC, whose close() raises again), a real file-size limit
(RLIMIT_FSIZE: EFBIG), a read-only target and an unwritable directory (EACCES), Ctrl-C at every step of the write,
SIGKILL at random moments, a hard-linked target. After each: the previous content is whole or the new one complete,
no temporary file is left (except after SIGKILL), the error names the user's path.
"""

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn import files
from minicnn.datasets import DataFileError, load_idx, save_idx

from helpers import run_cli

REPO = Path(__file__).resolve().parent.parent
TINY = dict(layers=("conv2", "maxpool"), max_iter=1, backend="numpy", batch_size=4)


def _fit(seed):
    import warnings

    rng = np.random.default_rng(seed)
    X = rng.random((12, 6, 6, 1), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return minicnn.CNNClassifier(**TINY, random_state=seed).fit(X, np.arange(12) % 3), X


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Two fitted models (old, new), their saved files and an input file for ``predict``."""
    d = tmp_path_factory.mktemp("made")
    (old, X), (new, _) = _fit(0), _fit(1)
    old.save(d / "old.npz")
    new.save(d / "new.npz")
    np.save(d / "X.npy", X)
    return {"old": old, "new": new, "X": X, "dir": d}


#: name -> write(made, path, which): writes the "old" or the "new" content of that writer to path.
WRITERS = {
    "model": lambda m, path, which: m[which].save(path),
    "predict_csv": lambda m, path, which: _check_cli(run_cli("predict", "--model", m["dir"] / f"{which}.npz",
                                                              "--proba", m["dir"] / "X.npy", "--out", path)),
    "onnx": lambda m, path, which: minicnn.export_onnx(m[which], path),
    "study_text": lambda m, path, which: files.write_text(path, f"{which} report\n" * 5000),
    "plot": lambda m, path, which: _save_figure_of(which, path),
}


def _check_cli(result):
    code, _, err = result
    if code == 130:   # the command's answer to Ctrl-C
        raise KeyboardInterrupt
    if code != 0:
        raise OSError(err.strip())


def _save_figure_of(which, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minicnn.tools.study.report import _save_figure

    fig, ax = plt.subplots(figsize=(2, 2))
    try:
        ax.plot([0, 1, 2] if which == "old" else [2, 0, 1])
        _save_figure(fig, path)
    finally:
        plt.close(fig)


#: The optional package each writer needs (its test skips without it).
NEEDS = {"onnx": "onnx", "plot": "matplotlib"}


@pytest.fixture(params=sorted(WRITERS))
def writer(request, made, tmp_path_factory):
    """(name, write(path, which), the complete old and new contents)."""
    name = request.param
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    write = WRITERS[name]
    d = tmp_path_factory.mktemp(name)
    contents = {}
    for which in ("old", "new"):
        write(made, d / which, which)
        contents[which] = (d / which).read_bytes()
    if name == "plot":   # matplotlib stamps nothing variable in a PNG: both contents are fixed
        assert contents["old"] != contents["new"]
    return name, (lambda path, which: write(made, path, which)), contents


def _setup(tmp_path, write, contents):
    path = tmp_path / "target"
    write(path, "old")
    assert path.read_bytes() == contents["old"]
    return path


# ------------------------------------------------------------ full disk (ENOSPC) during the write
class _FullDisk:
    """A file whose writes fail with ENOSPC after ``room`` bytes; flush and close then fail again (as a real
    buffered file on a full disk does), which must neither hide the error nor keep the temporary file."""

    def __init__(self, f, room):
        self._f, self._room, self._full = f, room, False

    def write(self, data):
        if self._full or len(data) > self._room:
            self._full = True
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._f.write(data)

    def flush(self):
        self._f.flush()
        if self._full:
            raise OSError(errno.ENOSPC, "No space left on device")

    def close(self):
        self._f.close()
        if self._full:
            raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.mark.parametrize("room", [0.0, 0.5, 0.99])
def test_a_full_disk_keeps_the_old_file_leaves_no_temporary_and_names_the_path(writer, tmp_path, monkeypatch, room):
    name, write, contents = writer
    path = _setup(tmp_path, write, contents)
    room = int(room * len(contents["new"]))
    real = files._open_temp
    monkeypatch.setattr(files, "_open_temp", lambda fd: _FullDisk(real(fd), room))
    for _ in range(5):   # repeated failures accumulate nothing
        with pytest.raises(OSError) as info:
            write(path, "new")
        assert info.value.errno == errno.ENOSPC or "No space left" in str(info.value)
        assert str(path) in str(info.value) and files.TEMP_PREFIX not in str(info.value)
        if isinstance(info.value, OSError) and info.value.filename is not None:
            assert os.fsdecode(info.value.filename) == str(path)
    monkeypatch.undo()
    assert path.read_bytes() == contents["old"] and os.listdir(tmp_path) == ["target"]
    write(path, "new")
    assert path.read_bytes() == contents["new"]


# ------------------------------------------------------------ a real file-size limit (EFBIG), in one child
_EFBIG_CHILD = """
import os, resource, sys, pickle
sys.path.insert(0, {tests!r})
import minicnn, test_atomic_writes as t
made = pickle.loads(bytes.fromhex(sys.argv[1]))
made.update(old=minicnn.load(made["dir"] / "old.npz"), new=minicnn.load(made["dir"] / "new.npz"))
for name, limit, path in zip(*[iter(sys.argv[2:])] * 3):
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), resource.RLIM_INFINITY))
    try:
        t.WRITERS[name](made, path, "new")
    except OSError as exc:
        print(name, "ERROR", exc.errno, exc, flush=True)
    else:
        print(name, "WROTE", flush=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
"""


def test_a_file_size_limit_keeps_the_old_file_and_names_the_path(made, tmp_path, tmp_path_factory):
    """RLIMIT_FSIZE (a real EFBIG) half-way through each writer's new content, in one child process."""
    import pickle

    argv, expected = [], {}
    for name in sorted(WRITERS):
        if name in NEEDS and not _has(NEEDS[name]):
            continue
        d = tmp_path / name
        d.mkdir()
        contents = {}
        for which in ("old", "new"):
            WRITERS[name](made, d / which, which)
            contents[which] = (d / which).read_bytes()
        (d / "new").unlink()
        path = d / "old"
        argv += [name, str(max(len(contents["new"]) // 2, 1)), str(path)]
        expected[name] = (path, contents["old"])
    payload = pickle.dumps({"dir": made["dir"], "X": made["X"]}).hex()
    done = subprocess.run([sys.executable, "-c", _EFBIG_CHILD.format(tests=str(REPO / "tests")), payload, *argv],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert sorted(lines) == sorted(expected), done.stdout
    for name, (path, old) in expected.items():
        assert lines[name].startswith(f"ERROR {errno.EFBIG}") or "File too large" in lines[name], (name, lines[name])
        assert str(path) in lines[name] and files.TEMP_PREFIX not in lines[name], (name, lines[name])
        assert path.read_bytes() == old and os.listdir(path.parent) == ["old"], name


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ------------------------------------------------------------ permissions and hard links
def test_a_read_only_target_is_refused_and_kept(writer, tmp_path):
    name, write, contents = writer
    path = _setup(tmp_path, write, contents)
    os.chmod(path, 0o444)
    with pytest.raises(OSError, match="Permission denied|read-only") as info:
        write(path, "new")
    assert str(path) in str(info.value)
    assert path.read_bytes() == contents["old"] and os.listdir(tmp_path) == ["target"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any directory")
def test_an_unwritable_directory_is_refused_and_the_file_kept(writer, tmp_path):
    name, write, contents = writer
    path = _setup(tmp_path, write, contents)
    os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(OSError, match="Permission denied|not writable") as info:
            write(path, "new")
        assert str(path) in str(info.value)
    finally:
        os.chmod(tmp_path, 0o755)
    assert path.read_bytes() == contents["old"] and os.listdir(tmp_path) == ["target"]


def test_a_hard_linked_target_is_replaced_under_its_name_and_the_other_link_keeps_the_old_content(writer, tmp_path):
    name, write, contents = writer
    path = _setup(tmp_path, write, contents)
    os.chmod(path, 0o640)
    os.link(path, tmp_path / "other")
    write(path, "new")
    assert path.read_bytes() == contents["new"] and (tmp_path / "other").read_bytes() == contents["old"]
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["other", "target"]


# ------------------------------------------------------------ Ctrl-C at every step
def _interrupt_at(monkeypatch, step):
    """Make step ``step`` of a write raise KeyboardInterrupt (the user's Ctrl-C arriving there)."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    if step == "first_write":
        real = files._open_temp

        class Interrupting:
            def __init__(self, f):
                self._f = f

            def write(self, data):
                raise KeyboardInterrupt

            def __getattr__(self, name):
                return getattr(self._f, name)
        monkeypatch.setattr(files, "_open_temp", lambda fd: Interrupting(real(fd)))
    elif step == "mid_write":
        real = files._open_temp

        class Interrupting:   # half of the first write reaches the file, then Ctrl-C
            def __init__(self, f):
                self._f = f

            def write(self, data):
                self._f.write(bytes(data)[: len(data) // 2])
                raise KeyboardInterrupt

            def __getattr__(self, name):
                return getattr(self._f, name)
        monkeypatch.setattr(files, "_open_temp", lambda fd: Interrupting(real(fd)))
    else:
        monkeypatch.setattr(os, step, interrupted)


@pytest.mark.parametrize("step", ["first_write", "mid_write", "fchmod", "fsync", "replace"])
def test_ctrl_c_at_any_step_keeps_the_old_file_and_leaves_no_temporary(writer, tmp_path, monkeypatch, step):
    name, write, contents = writer
    path = _setup(tmp_path, write, contents)
    _interrupt_at(monkeypatch, step)
    with pytest.raises(KeyboardInterrupt):
        write(path, "new")
    monkeypatch.undo()
    assert path.read_bytes() == contents["old"] and os.listdir(tmp_path) == ["target"]


def test_ctrl_c_inside_the_npz_writer_is_a_keyboard_interrupt_not_a_zip_error(made, tmp_path, monkeypatch):
    """Interrupted while a member is open, the archive is abandoned: no "Can't close the ZIP file" error."""
    path = tmp_path / "m.npz"
    made["old"].save(path)
    before = path.read_bytes()
    real = np.lib.format.write_array
    for at in range(1, 4):
        calls = []

        def write_array(fp, array, *args, **kwargs):
            calls.append(1)
            if len(calls) == at:
                fp.write(b"partial")
                raise KeyboardInterrupt
            return real(fp, array, *args, **kwargs)
        monkeypatch.setattr(np.lib.format, "write_array", write_array)
        with pytest.raises(KeyboardInterrupt) as info:
            made["new"].save(path)
        assert info.value.__context__ is None or not isinstance(info.value.__context__, ValueError)
        monkeypatch.undo()
        assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]


# ------------------------------------------------------------ SIGKILL at random moments, in a child
_KILL_CHILD = """
import sys, pickle
sys.path.insert(0, {tests!r})
import minicnn, test_atomic_writes as t
made = pickle.loads(bytes.fromhex(sys.argv[1]))
made.update(old=minicnn.load(made["dir"] / "old.npz"), new=minicnn.load(made["dir"] / "new.npz"))
write = t.WRITERS[sys.argv[2]]
print("ready", flush=True)
while True:
    for which in ("new", "old"):
        write(made, sys.argv[3], which)
"""


@pytest.mark.parametrize("kills", [1, pytest.param(8, marks=pytest.mark.slow)])   # each kill: a fresh child
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_signal_at_a_random_moment_leaves_the_old_or_the_new_content_whole(writer, made, tmp_path, kills, signum):
    """SIGKILL may leave a temporary file (nothing can remove it); SIGINT (Ctrl-C) leaves none."""
    import pickle

    name, write, contents = writer
    path = _setup(tmp_path, write, contents)
    payload = pickle.dumps({"dir": made["dir"], "X": made["X"]}).hex()
    rng = random.Random(f"kill-{name}-{kills}-{signum}")
    for _ in range(kills):
        child = subprocess.Popen([sys.executable, "-c", _KILL_CHILD.format(tests=str(REPO / "tests")), payload, name,
                                  str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=tmp_path)
        assert child.stdout.readline().strip() == "ready", child.stderr.read()[-3000:]
        time.sleep(rng.uniform(0.05, 0.6))
        child.send_signal(signum)
        _, err = child.communicate(timeout=600)
        if signum == signal.SIGINT:
            # the zipfile error an abandoned archive would raise, not any "ZIP" (a traceback through the line
            # opening the archive shows its source, "zipfile.ZIP_STORED": one loaded run failed on that)
            assert "KeyboardInterrupt" in err and "close the ZIP file" not in err, \
                f"exit {child.returncode}: {err[-3000:]}"
        assert path.read_bytes() in (contents["old"], contents["new"])
    leftovers = [p for p in os.listdir(tmp_path) if p != "target"]
    if signum == signal.SIGINT:
        assert not leftovers
    assert all(p.startswith(files.TEMP_PREFIX) for p in leftovers), leftovers


# ------------------------------------------------------------ the idx pair
def _pair(seed, n=4):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 5, 5), dtype=np.uint8), rng.integers(0, 10, n)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("fail", ["images", "labels"])
def test_an_idx_pair_replacement_failing_on_either_file_leaves_both_as_they_were(tmp_path, monkeypatch, suffix,
                                                                                  fail):
    x, y = tmp_path / f"x{suffix}", tmp_path / f"y{suffix}"
    save_idx(*_pair(0), x, y)
    before = {p: p.read_bytes() for p in (x, y)}
    real, calls = os.replace, []

    def replace(src, dst, *args, **kwargs):
        calls.append(dst)
        if os.path.basename(dst) == {"images": x.name, "labels": y.name}[fail]:
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dst, *args, **kwargs)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="Input/output error") as info:
        save_idx(*_pair(1), x, y)
    monkeypatch.undo()
    assert os.fsdecode(info.value.filename) == str({"images": x, "labels": y}[fail])
    assert {p: p.read_bytes() for p in (x, y)} == before
    assert sorted(os.listdir(tmp_path)) == sorted([x.name, y.name])   # no temporary, backup or journal left
    np.testing.assert_array_equal(load_idx(x, y)[1], _pair(0)[1])


_PAIR_KILL_CHILD = """
import os, sys
import numpy as np
from minicnn import files
from minicnn.datasets import save_idx
real, commits = files.Staged.commit, []
def commit(self):
    commits.append(self.path)
    if len([p for p in commits if not p.endswith(".minicnn-pair")]) == 2:   # killed between the two replacements
        os._exit(9)
    real(self)
files.Staged.commit = commit
rng = np.random.default_rng(1)
save_idx(rng.integers(0, 256, (4, 5, 5), dtype=np.uint8), rng.integers(0, 10, 4), sys.argv[1], sys.argv[2])
"""


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_a_kill_between_the_two_idx_replacements_is_detected_on_load(tmp_path, suffix):
    x, y = tmp_path / f"x{suffix}", tmp_path / f"y{suffix}"
    save_idx(*_pair(0), x, y)
    done = subprocess.run([sys.executable, "-c", _PAIR_KILL_CHILD, str(x), str(y)], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 9, done.stderr[-3000:]
    with pytest.raises(DataFileError, match="mixed pair") as info:
        load_idx(x, y)
    assert str(x) in str(info.value) and str(y) in str(info.value)
    save_idx(*_pair(2), x, y)   # saving the pair again repairs it and removes the journal
    np.testing.assert_array_equal(load_idx(x, y)[1], _pair(2)[1])
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".minicnn-pair")]


def test_the_idx_journal_only_refuses_a_pair_that_is_really_mixed(tmp_path):
    """A journal left behind with both files old (killed before the first replacement) or both new is no error."""
    x, y = tmp_path / "x", tmp_path / "y"
    save_idx(*_pair(0), x, y)
    # a journal whose hashes match neither file: both are old (killed before the first replacement), no error
    files.write_text(tmp_path / ".x.minicnn-pair", '{"labels": "%s", "images_sha256": "0", "labels_sha256": "1"}'
            % os.path.realpath(y))
    np.testing.assert_array_equal(load_idx(x, y)[1], _pair(0)[1])


# ------------------------------------------------------------ no writer bypasses minicnn.files
#: Writes that are not whole-file replacements, and why.
_NOT_REPLACEMENTS = {
    ("minicnn/tools/study/runner.py", 'open(self.path, "a"'): "the study's run log: appended and fsynced per row",
    ("minicnn/tools/bench.py", "np.save(xpath"): "an input array in the benchmark's private temporary folder",
    ("minicnn/io.py", "archive.open("): "a member inside the model file being written (through minicnn.files)",
    ("minicnn/checkpoint.py", "mkstemp("): "a probe that the directory accepts new files, removed at once",
    ("minicnn/images.py", 'open(tmp, "wb")'): "the image cache's array, filled in its own temporary file (through a "
                                              "memory map when larger than memory), removed on failure",
    ("minicnn/images.py", "np.save(f, full)"): "the same temporary file",
    ("minicnn/images.py", "os.replace(tmp, data_path)"): "puts that complete temporary file in place",
}


def test_every_file_the_package_writes_goes_through_minicnn_files():
    import re

    pattern = re.compile(r"""open\([^)]*["'](w|a|x|r\+|wb|ab|xb|w\+b)["']|\.write_text\(|\.write_bytes\(|"""
                         r"""savefig\(\s*(?!buffer)|\bnp\.save|onnx\.save\(|tofile\(|shutil\.|urlretrieve|\.dump\(|"""
                         r"""os\.write\(|os\.rename|os\.replace|mkstemp|NamedTemporaryFile""")
    found = []
    for source in sorted((REPO / "minicnn").rglob("*.py")):
        rel = source.relative_to(REPO).as_posix()
        if rel == "minicnn/files.py":
            continue
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            if pattern.search(code) and not code.strip().startswith((">>>", "...")) and '``' not in code:
                if not any(rel == f and key in code for f, key in _NOT_REPLACEMENTS):
                    found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, "writes that bypass minicnn.files:\n" + "\n".join(found)


def test_ctrl_c_during_the_bookkeeping_steps_is_raised_right_after_them():
    """A SIGINT arriving between creating a temporary file and registering it (or between os.replace and the
    cleanup) waits until the step is done, then is raised as KeyboardInterrupt."""
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with files._no_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)   # the handler has run by now
            steps.append("finished")
    assert steps == ["finished"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
