"""Folders larger than memory: ``cache=DIR, mmap_mode="r"`` decodes into the cache file and ``partial_fit`` on
chunks of the mapped array trains without the process ever holding the decoded folder.

The memory bound is enforced with tracemalloc, which counts NumPy's array buffers (and every Python allocation)
but not the pages of a mapped file: reading the same folder into memory is seen to cost its whole decoded size, the
mapped route must stay under a quarter of it while it decodes, trains on chunks of 40 rows and scores.
"""

import tracemalloc
import warnings

import numpy as np
import pytest

pytest.importorskip("PIL", reason="reading image files needs Pillow")
from PIL import Image  # noqa: E402

from minicnn import CNNClassifier  # noqa: E402
from minicnn.datasets import load_digits_images, load_image_folder  # noqa: E402

SIZE = (24, 24)   # 24 x 24 x 3 float32: 6.75 KiB an image


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """800 digit images as 24x24 RGB PNGs in 10 class folders (tinted per image), and 300 more to test on."""
    root = tmp_path_factory.mktemp("digits")
    X, y = load_digits_images()
    rng = np.random.default_rng(0)
    for split, rows in (("train", range(0, 800)), ("test", range(800, 1100))):
        for i in rows:
            folder = root / split / f"digit{y[i]}"
            folder.mkdir(parents=True, exist_ok=True)
            gray = np.asarray(Image.fromarray(np.rint(X[i, :, :, 0] * 255).astype(np.uint8)).resize(
                SIZE[::-1], Image.Resampling.BILINEAR), dtype=np.float32)[:, :, None] / 255
            rgb = gray * rng.uniform(0.5, 1.0, 3) + (1 - gray) * rng.uniform(0.0, 0.3, 3)
            Image.fromarray(np.rint(rgb * 255).astype(np.uint8)).save(folder / f"{i:04d}.png")
    return root


def make_model():
    return CNNClassifier(layers=("conv8", "maxpool", "conv16", "maxpool", "dense32"), batch_size=20,
                         learning_rate=3e-3, random_state=0, n_threads=2)


def traced_peak(run):
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_mapped_route_trains_without_holding_the_folder(digits_folder, tmp_path):
    in_memory, peak_in_memory = traced_peak(lambda: load_image_folder(digits_folder / "train", image_size=SIZE,
                                                                      color="rgb", n_threads=2))
    decoded = in_memory[0].nbytes   # 800 images: 5.3 MiB
    assert peak_in_memory >= decoded   # the bounds below are meaningful: tracing sees the decoded array
    chunk, chunk_y = np.array(in_memory[0][:40]), in_memory[1][:40]
    del in_memory
    with warnings.catch_warnings():   # compile the kernels outside the traced runs
        warnings.simplefilter("ignore")
        make_model().partial_fit(chunk, chunk_y, classes=np.arange(10))
        _, one_chunk = traced_peak(lambda: make_model().partial_fit(chunk, chunk_y, classes=np.arange(10)))
    # one_chunk: what training itself holds (workspaces for a batch, weights, optimizer state), whatever the data

    (X, y, names), peak_load = traced_peak(lambda: load_image_folder(
        digits_folder / "train", image_size=SIZE, color="rgb", n_threads=2, cache=tmp_path / "cache",
        mmap_mode="r"))
    assert isinstance(X.base, np.memmap) and not X.flags.writeable and X.nbytes == decoded
    assert peak_load < decoded / 4, f"decoding held {peak_load / 2**20:.2f} MiB of {decoded / 2**20:.1f} MiB"

    def train():
        X, y, names = load_image_folder(digits_folder / "train", image_size=SIZE, color="rgb", cache=tmp_path / "cache",
                                        mmap_mode="r")
        clf = make_model()
        rng = np.random.default_rng(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # whatever one epoch on 40 images says of itself
            for _ in range(8):   # the rows are in class order: each chunk draws rows from the whole folder
                for rows in np.array_split(rng.permutation(len(X)), len(X) // 40):
                    rows = np.sort(rows)   # read in file order
                    clf.partial_fit(X[rows], y[rows], classes=np.arange(len(names)))
        return clf
    clf, peak_train = traced_peak(train)
    assert peak_train < one_chunk + decoded / 4, (f"training held {(peak_train - one_chunk) / 2**20:.2f} MiB more "
                                                  f"than on one chunk, of a {decoded / 2**20:.1f} MiB folder")
    X_test, y_test, test_names = load_image_folder(digits_folder / "test", image_size=SIZE, color="rgb")
    assert test_names == names and clf.preprocessing_ == X_test.preprocessing
    accuracy = clf.score(X_test, y_test)
    assert accuracy > 0.8, accuracy   # chance: 0.1
