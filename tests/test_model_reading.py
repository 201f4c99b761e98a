"""evaluate and mc-report read a saved model's ``folder:`` data with every option of its preprocessing record.

A record option left out of the reading (an interpolation, a ``reducing_gap``)
scores the model on images read otherwise than at fit and at predict: the
kind is "an option of the record that one face forgets", so every option of
the record is swept, each with a value other than its default.
"""

import inspect

import pytest

from minicnn import images, preprocessing
from minicnn._images_cli import model_reading

NON_DEFAULT = {"image_size": [12, 10], "color": "rgb", "crop_to_aspect_ratio": True, "pad_to_aspect_ratio": False,
               "interpolation": "bicubic", "scale": "unit", "reducing_gap": 2.0}


class _Model:
    def __init__(self, record):
        self.preprocessing_ = record
        self.input_shape_ = (12, 10, 3)


def _record(**changes):
    record = {k: NON_DEFAULT[k] for k in preprocessing.KEYS}
    record.update(changes)
    return record


def test_every_record_key_has_a_value_in_this_test():
    assert set(NON_DEFAULT) == set(preprocessing.KEYS) | set(preprocessing.OPTIONAL)


@pytest.mark.parametrize("option", sorted(set(preprocessing.KEYS) - {"scale"} | set(preprocessing.OPTIONAL)))
def test_every_reading_option_of_the_record_reaches_the_folder_reader(option):
    record = _record(**{k: NON_DEFAULT[k] for k in preprocessing.OPTIONAL})
    if option in ("crop_to_aspect_ratio", "pad_to_aspect_ratio"):
        record.update(crop_to_aspect_ratio=option == "crop_to_aspect_ratio",
                      pad_to_aspect_ratio=option == "pad_to_aspect_ratio")
    assert preprocessing.problem(record, (12, 10, 3)) is None
    reading = model_reading(_Model(record))
    expected = record[option] if option != "image_size" else tuple(record[option])
    assert reading[option] == expected
    assert reading == dict(preprocessing.reading(record), image_size=(12, 10))   # what predict reads files with
    assert set(reading) <= set(inspect.signature(images.load_image_folder).parameters)


def test_an_older_record_without_optional_keys_reads_with_their_defaults():
    reading = model_reading(_Model(_record()))
    assert all(reading[k] == default for k, default in preprocessing.OPTIONAL.items())


def test_every_reading_option_of_the_record_is_an_option_of_fit():
    import argparse

    from minicnn._images_cli import _OPTIONS, add_cli_options

    assert set(_OPTIONS) == set(preprocessing.KEYS) - {"scale"} | set(preprocessing.OPTIONAL)
    parser = argparse.ArgumentParser()
    add_cli_options(parser)
    assert {a.dest for a in parser._actions} - {"help"} == set(_OPTIONS)


@pytest.mark.parametrize("interpolation", [i for i in preprocessing.INTERPOLATIONS if i != "bilinear"])
def test_a_filter_without_a_size_is_refused_when_asked_and_moot_in_an_older_record(tmp_path, interpolation):
    """The library refuses a resize filter without image_size (nothing would be resized), as the command does;
    a record saved before holds it harmlessly: it stays valid and reads its files unresized."""
    import numpy as np

    Image = pytest.importorskip("PIL.Image", reason="reading image files needs Pillow")

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.full((6, 5), 40 if name == "a" else 200, np.uint8)).save(tmp_path / name / "0.png")
    with pytest.raises(ValueError, match=f"interpolation='{interpolation}' needs an image_size"):
        images.load_image_folder(tmp_path, interpolation=interpolation)
    with pytest.raises(ValueError, match=f"interpolation='{interpolation}' needs an image_size"):
        images.load_images([str(tmp_path / "a" / "0.png")], interpolation=interpolation)
    record = dict(_record(image_size=None, color="grayscale", crop_to_aspect_ratio=False), interpolation=interpolation)
    assert preprocessing.problem(record, (6, 5, 1)) is None
    reading = preprocessing.reading(record)
    assert reading["interpolation"] == "bilinear"
    X = images.load_images([str(tmp_path / "a" / "0.png")], **reading)
    assert X.shape == (1, 6, 5, 1)
