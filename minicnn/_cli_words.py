"""The ``minicnn`` command's spelling of the library's messages: ``data_format='channels_first'`` becomes
``--data-format channels_first``, so a warning or error names the option the user typed, not a Python keyword."""

import re

from . import params

#: Parameters whose option is not ``--`` plus the name with dashes.
OPTION_OF = {"max_iter": "--epochs", "random_state": "--seed", "verbose": "--quiet", "checkpoint_path": "--checkpoint"}
_VALUE = r"('[^']*'|\"[^\"]*\"|\([^()]*\)|\[[^\[\]]*\]|[^\s,;:()]+)"
_PATTERN = re.compile(r"\b(" + "|".join(sorted(params.TABLE, key=len, reverse=True)) + r")=" + _VALUE)


def option(name):
    """The command-line option of estimator parameter ``name``."""
    return OPTION_OF.get(name, "--" + name.replace("_", "-"))


def _value(text):
    if text[:1] in "'\"" and text[-1:] == text[:1]:
        return text[1:-1]
    if text[:1] in "([" and text[-1:] in ")]":
        return ",".join(part.strip().strip("'\"") for part in text[1:-1].split(",") if part.strip())
    return text


def cli_spelling(message):
    """``message`` with every ``param=value`` of an estimator parameter written as its option and value.

    Examples
    --------
    >>> cli_spelling("use data_format='channels_first' or input_shape=(8, 8, 1); max_iter=3")
    'use --data-format channels_first or --input-shape 8,8,1; --epochs 3'
    """
    def replace(match):
        name, value = match.group(1), match.group(2)
        if name == "verbose":
            return match.group(0)
        return f"{option(name)} {_value(value)}"

    return _PATTERN.sub(replace, message)
