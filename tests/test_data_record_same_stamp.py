"""An edit in place that keeps a data file's size and puts its modification time back is still said.

Swept over every kind of data file (.npz, idx images + labels, folder:) given as ``--data`` or ``--test-data``,
with the content hash (files up to ``HASHED_BYTES``) and without it (larger files, and every folder): the edit is
caught by the hash where there is one, else by the status-change time, which no call can set back. The same files
untouched, and the data copied with its dates to another path, give nothing to say.
"""

import os
import shutil
import time

import pytest

from minicnn import _data_record
from test_data_record_files import KINDS, _data, _write
from test_data_record_moved import _model, _spec_for


def _edit_keeping_size_and_mtime(path):
    before = os.stat(path)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def _after_the_next_tick(folder, since_ns):
    """Wait until a file written now has a status-change time after ``since_ns`` (file times advance by ticks)."""
    probe = folder / ".tick"
    for _ in range(500):
        probe.write_bytes(b"")
        if os.stat(probe).st_ctime_ns > since_ns:
            break
        time.sleep(0.01)
    probe.unlink()


@pytest.mark.parametrize("hashed", [True, False], ids=["hashed", "too-large-to-hash"])
@pytest.mark.parametrize("option", ["--data", "--test-data"])
@pytest.mark.parametrize("kind", KINDS)
def test_an_edit_keeping_size_and_mtime_is_said(kind, option, hashed, tmp_path, monkeypatch):
    pytest.importorskip("PIL", reason="folder: data needs Pillow")
    if not hashed:
        monkeypatch.setattr(_data_record, "HASHED_BYTES", 0)
    home = tmp_path / "home"
    spec = _write(kind, home, *_data(0))
    monkeypatch.chdir(home)
    record = _data_record.make_record(*_spec_for(option, spec), 0.2, 0)
    assert _data_record.data_record_problem(record) is None
    model = _model(record)
    assert _data_record.data_changes(model, option, spec) == []

    moved = tmp_path / "moved"   # a copy with its dates (new inodes and status-change times) is the same data
    shutil.copytree(home, moved, copy_function=shutil.copy2)
    monkeypatch.chdir(moved)
    assert _data_record.data_changes(model, option, spec) == []

    monkeypatch.chdir(home)
    newest = max(e["ctime_ns"] for e in record["files"])
    _after_the_next_tick(tmp_path, newest)
    target = sorted(p for p in home.rglob("*") if p.is_file())[-1]
    _edit_keeping_size_and_mtime(target)
    said = _data_record.data_changes(model, option, spec)
    assert len(said) == 1 and "changed since 'minicnn fit' read it" in said[0], said
    assert ("sha256" if hashed and kind != "folder" else "status-change time") in said[0], said


def test_a_record_without_ctime_still_loads_and_compares_as_before(tmp_path, monkeypatch):
    home = tmp_path / "home"
    spec = _write("npz", home, *_data(0))
    monkeypatch.chdir(home)
    record = _data_record.make_record(spec, None, 0.2, 0)
    for entry in record["files"]:   # as written before the key existed
        del entry["ctime_ns"]
    assert _data_record.data_record_problem(record) is None
    assert _data_record.data_changes(_model(record), "--data", spec) == []
    bad = dict(record, files=[dict(record["files"][0], ctime_ns=-1)])
    assert _data_record.data_record_problem(bad) is not None
