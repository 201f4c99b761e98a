"""A data set too small to hold part of it out gives one minicnn error at every entry point that splits.

The error names the setting (``--test-size``, ``validation_fraction``, the study's ``test_size``), the counts
(images per class) and what would be enough; scikit-learn's own wording ("The test_size = 1 should be greater or
equal to the number of classes = 2") never reaches the user. Swept: ``minicnn fit`` on ``folder:``, ``.npz`` and
``idx:`` data, the estimators' early-stopping split (classifier, every class size), the study on user data, and
GridSearchCV's inner fits.
"""

import re
import warnings

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from minicnn import CNNClassifier
from minicnn.cli import main
from minicnn.datasets import save_idx
from minicnn.holdout import ceil_count, check_holdout, round_count

SKLEARN_WORDING = re.compile(r"should be greater or equal to the number of classes|resulting train set will be empty")
LAYERS = ("conv2", "maxpool", "dense4")


def tiny(per_class=2, n_classes=2, size=8):
    rng = np.random.default_rng(0)
    X = rng.random((per_class * n_classes, size, size, 1), dtype=np.float32)
    return X, np.repeat(np.arange(n_classes), per_class)


def write_data(kind, tmp_path, per_class=2, n_classes=2):
    X, y = tiny(per_class, n_classes)
    if kind == "folder":
        from PIL import Image

        for i, (image, label) in enumerate(zip(X, y)):
            (tmp_path / f"class{label}").mkdir(exist_ok=True)
            Image.fromarray(np.rint(image[:, :, 0] * 255).astype(np.uint8)).save(tmp_path / f"class{label}/{i}.png")
        return f"folder:{tmp_path}"
    if kind == "npz":
        np.savez(tmp_path / "d.npz", X=X, y=y)
        return str(tmp_path / "d.npz")
    save_idx(np.rint(X[..., 0] * 255).astype(np.uint8), y.astype(np.uint8), tmp_path / "images.idx",
             tmp_path / "labels.idx")
    return f"idx:{tmp_path / 'images.idx'},{tmp_path / 'labels.idx'}"


@pytest.mark.parametrize("kind", ["folder", "npz", "idx"])
@pytest.mark.parametrize("per_class, n_classes, test_size, enough", [(2, 2, "0.2", 3), (3, 7, "0.1", 9),
                                                                    (10, 2, "0.95", 20)])
def test_fit_command_names_test_size_and_the_images_per_class(kind, per_class, n_classes, test_size, enough,
                                                              tmp_path, capsys):
    if kind == "folder":
        pytest.importorskip("PIL")
    data = write_data(kind, tmp_path, per_class, n_classes)
    code = main(["fit", "--data", data, "--test-size", test_size, "--max-iter", "1", "--out",
                 str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert code != 0 and not (tmp_path / "m.npz").exists()
    assert f"--test-size {test_size} holds out" in err and f"{per_class} images per class" in err
    assert f"at least {enough} images per class" in err and "--test-data" in err and data in err
    assert not SKLEARN_WORDING.search(err)


@pytest.mark.parametrize("layout, expected", [({"a": 1, "b": 0}, "empty class folder"),
                                              ({"a": 1}, "has one class subfolder")])
def test_a_folder_wrong_in_itself_is_refused_for_that_first(layout, expected, tmp_path, capsys):
    """An empty class folder or a single class is said as such, not as a split that cannot be made."""
    pytest.importorskip("PIL")
    from PIL import Image

    for name, count in layout.items():
        (tmp_path / name).mkdir()
        for i in range(count):
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / name / f"{i}.png")
    code = main(["fit", "--data", f"folder:{tmp_path}", "--max-iter", "1", "--out", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert code != 0 and expected in err and "--test-size" not in err


@pytest.mark.parametrize("kind", ["folder", "npz", "idx"])
def test_fit_command_trains_once_the_suggested_size_is_reached(kind, tmp_path, capsys):
    """The remedy the message gives (3 images per class at --test-size 0.2) is enough for the split."""
    if kind == "folder":
        pytest.importorskip("PIL")
    data = write_data(kind, tmp_path, per_class=3, n_classes=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a 1-epoch fit of 4 images: whatever the estimator says of that
        code = main(["fit", "--data", data, "--test-size", "0.2", "--max-iter", "1", "--no-early-stopping",
                     "--layers", ",".join(LAYERS), "--out", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("per_class, n_classes, fraction", [(2, 2, 0.1), (2, 5, 0.1), (3, 7, 0.1), (10, 2, 0.95)])
def test_early_stopping_split_names_validation_fraction(per_class, n_classes, fraction):
    X, y = tiny(per_class, n_classes)
    clf = CNNClassifier(layers=LAYERS, early_stopping=True, validation_fraction=fraction, max_iter=1)
    with pytest.raises(ValueError) as info:
        clf.fit(X, np.array([f"c{v}" for v in y]))
    message = str(info.value)
    assert f"validation_fraction={fraction} holds out" in message and f"{per_class} samples per class" in message
    assert "early_stopping=False" in message and "at least" in message and not SKLEARN_WORDING.search(message)


def test_study_on_user_data_names_the_data_and_the_samples_per_class(tmp_path):
    from minicnn.tools.study.data import load_split

    from minicnn.tools.study.data import min_per_class

    X, y = tiny(per_class=3, n_classes=10)   # the hold-out, then the estimator's validation split, need more
    np.savez(tmp_path / "s.npz", X=X, y=y)
    with pytest.raises(ValueError) as info:
        load_split(str(tmp_path / "s.npz"), 0.2)
    message = str(info.value)
    assert str(tmp_path / "s.npz") in message and "has 3 sample(s)" in message
    assert f"at least {min_per_class(0.2, 10)} samples per class" in message and not SKLEARN_WORDING.search(message)


def test_grid_search_inner_fits_say_validation_fraction():
    X, y = tiny(per_class=3, n_classes=2)   # each training fold of cv=3: 4 images, 2 per class
    search = GridSearchCV(CNNClassifier(layers=LAYERS, early_stopping=True, validation_fraction=0.1, max_iter=1),
                          {"dropout": ["none"]}, cv=3)
    with warnings.catch_warnings(), pytest.raises(ValueError) as info:
        warnings.simplefilter("ignore")   # FitFailedWarning for each fold before "all fits failed"
        search.fit(X, y)
    message = str(info.value)
    assert "validation_fraction=0.1 holds out 1 of 4 samples" in message and "2 samples per class" in message


@pytest.mark.parametrize("count_of", [ceil_count, round_count])
@pytest.mark.parametrize("n_classes", [2, 3, 10])
@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.2, 0.5, 0.9])
def test_the_remedies_it_names_are_enough(count_of, n_classes, fraction):
    """The samples per class and the fraction range a message suggests pass the check; one fewer per class fails."""
    for per_class in range(2, 40):
        y = np.repeat(np.arange(n_classes), per_class)
        try:
            check_holdout(y, fraction, parameter="f", count_of=count_of)
            continue
        except ValueError as exc:
            message = str(exc)
        enough = int(re.search(r"at least (\d+) samples per class", message).group(1))
        check_holdout(np.repeat(np.arange(n_classes), enough), fraction, parameter="f", count_of=count_of)
        if enough > 2:
            with pytest.raises(ValueError):
                check_holdout(np.repeat(np.arange(n_classes), enough - 1), fraction, parameter="f",
                              count_of=count_of)
        suggested = re.search(r"f=([\d.]+)(?: to ([\d.]+))?", message.split("Pass")[1])
        if suggested:
            for value in filter(None, suggested.groups()):
                assert check_holdout(y, float(value), parameter="f", count_of=count_of)


def test_a_check_that_passes_says_whether_it_stratifies():
    assert check_holdout([0, 0, 1, 1, 0, 1, 0, 1, 0, 1], 0.2, parameter="f") is True
    assert check_holdout([0, 1, 1, 1, 1], 0.2, parameter="f") is False   # a class of one: not stratified
    with pytest.raises(ValueError, match="holds out 0 of 1"):
        check_holdout([0], 0, parameter="f")


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A one-epoch model on 8x8x1 images (evaluate and mc-report need one)."""
    path = tmp_path_factory.mktemp("model") / "m.npz"
    X, y = tiny(per_class=10, n_classes=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        CNNClassifier(layers=LAYERS, max_iter=1, early_stopping=False, random_state=0).fit(X, y).save(path)
    return path


@pytest.mark.parametrize("command", ["evaluate", "mc-report"])
@pytest.mark.parametrize("kind", ["folder", "npz", "idx"])
def test_every_command_that_splits_data_names_test_size(command, kind, small_model, tmp_path, capsys):
    if kind == "folder":
        pytest.importorskip("PIL")
    data = write_data(kind, tmp_path)
    code = main([command, "--model", str(small_model), "--data", data, "--test-size", "0.2"])
    err = capsys.readouterr().err
    assert code != 0
    assert "--test-size 0.2 holds out 1 of 4 images" in err and "2 images per class" in err and "--test-data" in err
    assert not SKLEARN_WORDING.search(err)


@pytest.mark.parametrize("labels", [np.array(["cat"] * 30 + ["dog"] * 50, dtype=object),
                                    np.array(["cat"] * 30 + ["dog"] * 50), np.repeat([3, 7], [30, 50])])
def test_unequal_classes_of_any_label_kind_split_without_error(labels):
    # the message's "(NAME has N)" part was built before the check, and crashed on str labels of an object array
    assert check_holdout(labels, 0.2, parameter="--test-size") is True
    with pytest.raises(ValueError, match=r"10 to 30 samples per class \('cat' has 10\)"):
        check_holdout(np.array(["cat"] * 10 + ["dog"] * 30, dtype=object), 0.99, parameter="--test-size")


def test_unequal_class_folder_fits_and_evaluates(tmp_path, capsys):
    pytest.importorskip("PIL")
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in (("cat", 6), ("dog", 9)):
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(tmp_path / "d" / name / f"{i}.png")
    data, model = f"folder:{tmp_path / 'd'}", str(tmp_path / "m.npz")
    assert main(["fit", "--data", data, "--layers", "conv2,maxpool", "--max-iter", "1", "--no-early-stopping",
                 "--out", model, "--quiet"]) == 0, capsys.readouterr().err
    assert main(["evaluate", "--model", model, "--data", data]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("kind", ["folder", "npz"])
def test_one_image_per_class_names_the_split_not_a_missing_class(kind, tmp_path, capsys):
    if kind == "folder":
        pytest.importorskip("PIL")
    data = write_data(kind, tmp_path, per_class=1, n_classes=2)
    code = main(["fit", "--data", data, "--max-iter", "1", "--out", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert code != 0 and "--test-size 0.2 holds out 1 of 2 images" in err and "keeps 1 for training" in err
    assert "only one class" not in err
