"""Numba's cache never serves a kernel built from older sources of this package.

Numba keys a cached kernel on its own source file; the ``@jit`` helpers it calls from other modules and the
constants it reads are compiled into it, so an edit of those alone used to leave old code running.
"""

import os

import pytest

from minicnn.backend import jit


def _touch(path, text):
    with open(path, "w") as file:
        file.write(text)


def test_refresh_drops_the_cached_kernels_of_another_digest(tmp_path):
    for name in ("conv.f-1.py311.nbi", "conv.f-1.py311.1.nbc", "conv.cpython-311.pyc"):
        _touch(tmp_path / name, "x")
    assert jit.refresh_cache_dir(str(tmp_path), "one") is True
    assert sorted(os.listdir(tmp_path)) == ["conv.cpython-311.pyc", jit.STAMP_NAME]
    assert (tmp_path / jit.STAMP_NAME).read_text().strip() == "one"
    _touch(tmp_path / "conv.f-1.py311.nbi", "x")   # compiled again under the same sources: kept
    assert jit.refresh_cache_dir(str(tmp_path), "one") is False
    assert (tmp_path / "conv.f-1.py311.nbi").exists()
    assert jit.refresh_cache_dir(str(tmp_path), "two") is True   # the sources changed: dropped
    assert not (tmp_path / "conv.f-1.py311.nbi").exists()
    assert (tmp_path / jit.STAMP_NAME).read_text().strip() == "two"


def test_refresh_leaves_a_directory_it_cannot_read_alone(tmp_path):
    assert jit.refresh_cache_dir(str(tmp_path / "missing"), "one") is False
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("change", ["edit", "same_size_edit", "add", "remove"])
def test_sources_digest_follows_every_source_change(tmp_path, change):
    _touch(tmp_path / "helper.py", "A = 1\n")
    _touch(tmp_path / "kernel.py", "B = 2\n")
    (tmp_path / "__pycache__").mkdir()
    before = jit.sources_digest(str(tmp_path))
    _touch(tmp_path / "__pycache__" / "ignored.py", "C = 3\n")   # caches are not sources
    _touch(tmp_path / "notes.txt", "text")
    assert jit.sources_digest(str(tmp_path)) == before
    if change == "edit":
        _touch(tmp_path / "helper.py", "A = 10\n")
    elif change == "same_size_edit":
        _touch(tmp_path / "helper.py", "A = 9\n")
        info = os.stat(tmp_path / "helper.py")
        os.utime(tmp_path / "helper.py", ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))
    elif change == "add":
        _touch(tmp_path / "extra.py", "")
    else:
        os.remove(tmp_path / "kernel.py")
    assert jit.sources_digest(str(tmp_path)) != before


def test_the_kernels_cache_directory_is_stamped_with_todays_sources():
    pytest.importorskip("numba")
    from minicnn.backend.numba_kernels import _bias_act_rows

    path = _bias_act_rows._bias_act_rows._cache.cache_path
    if path is None or not jit.CACHE:
        pytest.skip("Numba caches nothing here (no writable cache directory)")
    assert path in jit._state["refreshed"]
    with open(os.path.join(path, jit.STAMP_NAME)) as file:
        assert file.read().strip() == jit.sources_digest()
