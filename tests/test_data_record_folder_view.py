"""A ``folder:`` data record's fingerprint covers exactly the files the folder reader reads.

``minicnn fit --data folder:PATH`` reads the files of PATH's class subfolders, following symbolic links (a
class folder linked from elsewhere, a linked subfolder, a linked image) and skipping hidden files. The
fingerprint kept in the model file must see the same files: a change to any file the reader reads is said
by ``evaluate`` / ``mc-report`` (:func:`minicnn._data_record.data_changes`), and a change to a file it never
reads (a hidden ``.DS_Store``) is not. Swept over every way a read file can sit in the folder.
"""

import os

import numpy as np
import pytest

pytest.importorskip("PIL", reason="reading image folders needs Pillow")
from PIL import Image  # noqa: E402

from minicnn import _data_record  # noqa: E402
from minicnn.images import list_folder  # noqa: E402


def _png(path, value):
    Image.fromarray(np.full((4, 4), value, np.uint8)).save(path)


def _layout(root, kind):
    """``root/data`` of two classes in which one read file sits as ``kind`` says; returns that file's real path."""
    data, elsewhere = root / "data", root / "elsewhere"
    (data / "a").mkdir(parents=True)
    elsewhere.mkdir()
    _png(data / "a" / "0.png", 10)
    if kind == "plain":
        (data / "b").mkdir()
        target = data / "b" / "1.png"
    elif kind == "linked class folder":
        os.symlink(elsewhere, data / "b")
        target = elsewhere / "1.png"
    elif kind == "linked subfolder":
        (data / "b").mkdir()
        os.symlink(elsewhere, data / "b" / "more")
        target = elsewhere / "1.png"
    elif kind == "linked image":
        (data / "b").mkdir()
        target = elsewhere / "1.png"
        os.symlink(target, data / "b" / "1.png")
    _png(target, 20)
    return data, target


KINDS = ("plain", "linked class folder", "linked subfolder", "linked image")


def _model(record):
    class Model:
        _data_record = record
    return Model()


@pytest.mark.parametrize("kind", KINDS)
def test_the_fingerprint_counts_the_files_the_reader_reads(tmp_path, kind):
    data, _ = _layout(tmp_path, kind)
    paths, _, _ = list_folder(data)
    fingerprint = _data_record.fingerprint(str(data))
    assert fingerprint["count"] == len(paths) == 2
    assert fingerprint["size"] == sum(os.stat(p).st_size for p in paths)


@pytest.mark.parametrize("kind", KINDS)
def test_a_change_to_a_read_file_is_said_and_a_hidden_file_is_not(tmp_path, kind, monkeypatch):
    data, target = _layout(tmp_path, kind)
    monkeypatch.chdir(tmp_path)
    spec = "folder:data"
    model = _model(_data_record.make_record(spec, None, 0.2, 0))
    assert _data_record.data_changes(model, "--data", spec) == []
    (data / "a" / ".DS_Store").write_bytes(b"\0" * 100)   # never read: nothing to say
    (data / ".hidden").write_bytes(b"x")
    assert _data_record.data_changes(model, "--data", spec) == []
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(target)   # a read file changed
    said = _data_record.data_changes(model, "--data", spec)
    assert len(said) == 1 and "changed since 'minicnn fit' read it" in said[0], said
