"""A value of the right form that an option refuses is said in the option's words, never the library's.

``test_cli_option_words`` sweeps words where a number belongs; this sweeps numbers and sizes that parse but are
out of range (zero, negative, NaN, infinite, too small, too large, a size over the pixel limit), for every option
of every command that checks its value as it parses: the argparse error names ``--option`` and the value typed,
and no library parameter name (``reducing_gap=``, ``image_size``) or Python value (``None``) appears.
"""

import argparse

import pytest

from test_cli_option_words import SWEPT, _library_names, _parser, _value_options

VALUES = ("0", "-1", "nan", "inf", "0.5", "1e400", "99999,99999", "0,0")


def _checked_options():
    for command in SWEPT:
        for action in _value_options(command):
            if action.choices is None and callable(action.type) and action.type not in (str, int, float):
                yield command, next(f for f in action.option_strings if f.startswith("--")), action


@pytest.mark.parametrize("command, flag", [(c, f) for c, f, _ in _checked_options()])
def test_an_out_of_range_value_is_refused_in_the_options_words(command, flag):
    action = next(a for c, f, a in _checked_options() if (c, f) == (command, flag))
    takes_none = _accepts(action, "none")
    for value in VALUES:
        try:
            action.type(value)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            text = str(exc)
            assert any(repr(part) in text or part in text for part in [value, *value.split(",")]), (flag, value, text)
            for name in _library_names(command, flag) | {action.dest}:
                if "_" in name:
                    assert name not in text, (flag, value, text)
            assert takes_none or "None" not in text, (flag, value, text)   # a value that cannot be typed


def _accepts(action, text):
    try:
        action.type(text)
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return False
    return True
