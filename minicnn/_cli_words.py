"""The ``minicnn`` command's spelling of the library's messages: ``data_format='channels_first'`` becomes
``--data-format channels_first``, so a warning or error names the option the user typed, not a Python keyword.

One map per command run (:func:`typed_options`): every option of the command that takes a value, under its
parser destination and the library's parameter name for it (``checkpoint_path`` -> ``--checkpoint``), spelled
as the user typed it (``--max-iter`` when typed so, else the option's first name)."""

import re

from . import params

#: Library parameters whose option is not ``--`` plus the name with dashes (one table: the parser's
#: destinations say the rest).
OPTION_OF = {"max_iter": "--epochs", "random_state": "--seed", "verbose": "--quiet", "checkpoint_path": "--checkpoint"}
#: The parser destination that each of those options fills, where it differs from the library's name.
_DEST_OF = {"random_state": "seed", "checkpoint_path": "checkpoint"}
_VALUE = r"('[^']*'|\"[^\"]*\"|\([^()]*\)|\[[^\[\]]*\]|[^\s,;:()]+)"


def option(name):
    """The command-line option of estimator parameter ``name``."""
    return OPTION_OF.get(name, "--" + name.replace("_", "-"))


def _value(text):
    if text == "None":
        return "none"
    if text[:1] in "'\"" and text[-1:] == text[:1]:
        return text[1:-1]
    if text[:1] in "([" and text[-1:] in ")]":
        return ",".join(part.strip().strip("'\"") for part in text[1:-1].split(",") if part.strip())
    return text


def typed_options(parser, argv=()):
    """``{name: option}`` for every option of ``parser`` (switches too), as typed in ``argv``.

    ``name`` is the parser destination and, where the library calls it
    otherwise (:data:`OPTION_OF`), the library's parameter name; ``option`` is
    the flag found in ``argv`` (``--max-iter``, or ``--max-iter=3``) or else
    the option's first long name.
    """
    typed = {a.split("=", 1)[0] for a in argv if str(a).startswith("--")}
    names = {}
    for action in getattr(parser, "_actions", ()):
        if not action.option_strings or action.dest in ("help", "version", "debug", "verbose"):
            continue
        flags = [f for f in action.option_strings if f.startswith("--")] or action.option_strings
        names[action.dest] = next((f for f in flags if f in typed), flags[0])
        negative = [f for f in flags if f.startswith("--no-")] if len(flags) > 1 else []   # a pair --X / --no-X
        if action.nargs == 0 and negative and names[action.dest] in negative:   # --no-X typed: name X's flag
            names[action.dest] = next((f for f in flags if not f.startswith("--no-")), names[action.dest])
        if action.nargs == 0 and negative:
            names[action.dest + "=False"] = negative[0]
    for library, dest in dict(_DEST_OF, max_iter="max_iter").items():
        if dest in names:
            names[library] = names[dest]
    return names


def _pattern(names):
    alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    return re.compile(r"(?<![\w.-])(" + alternatives + r")=" + _VALUE)


_PATTERN = _pattern(params.TABLE)


def cli_spelling(message, options=None):
    """``message`` with every ``param=value`` of an estimator parameter written as its option and value.

    With ``options`` (:func:`typed_options` of the command that ran), the command's own options too, and a
    parameter named alone (``set another checkpoint_path``, ``the 'dropout_rate' parameter``) when its name is
    a Python identifier with an underscore (plain words such as ``data`` stay words).

    Examples
    --------
    >>> cli_spelling("use data_format='channels_first' or input_shape=(8, 8, 1); max_iter=3")
    'use --data-format channels_first or --input-shape 8,8,1; --epochs 3'
    >>> cli_spelling("checkpoint_path='a/b': not writable; set another checkpoint_path",
    ...              {"checkpoint_path": "--checkpoint"})
    '--checkpoint a/b: not writable; set another --checkpoint'
    """
    spelled = {name: option(name) for name in params.TABLE}
    spelled.update(options or {})

    def replace(match):
        name, value = match.group(1), match.group(2)
        if name == "verbose":
            return match.group(0)
        if value in ("True", "False") and options is not None and name in options:   # a switch
            return spelled[name] if value == "True" else spelled.get(f"{name}=False", f"no {spelled[name]}")
        return f"{spelled[name]} {_value(value)}"

    text = (_PATTERN if options is None else _pattern([n for n in spelled if "=" not in n])).sub(replace, message)
    bare = [name for name in spelled if "_" in name and "=" not in name and name != "verbose" and (options is None or name in options
                                                                              or name in params.TABLE)]
    if not bare:
        return text
    alone = "|".join(sorted(map(re.escape, bare), key=len, reverse=True))
    text = re.sub(r"'(" + alone + r")'", lambda m: spelled[m[1]], text)
    return re.sub(r"(?<![\w.'-])(" + alone + r")(?![\w'(=-])", lambda m: spelled[m[1]], text)


def given_values(argv, options):
    """``[(flag, value)]`` of the options in ``argv`` (``--flag value`` or ``--flag=value``) that take a value."""
    flags = set(options.values())
    argv = [str(a) for a in argv]
    given = []
    for i, word in enumerate(argv):
        flag, sep, value = word.partition("=")
        if flag in flags and sep:
            given.append((flag, value))
        elif word in flags and i + 1 < len(argv):
            given.append((word, argv[i + 1]))
    return given


def name_the_option(message, exc, argv, options):
    """``message``, prefixed with ``--flag VALUE:`` when ``exc`` is an OSError about the file one option received
    and the message names no option given (e.g. ``[Errno 21] Is a directory: 'a/b'`` from ``--model a/b``).

    Examples
    --------
    >>> error = IsADirectoryError(21, "Is a directory", "a/b")
    >>> name_the_option(str(error), error, ["export", "--model", "a/b"], {"model": "--model"})
    "--model a/b: [Errno 21] Is a directory: 'a/b'"
    """
    import os

    filename = getattr(exc, "filename", None) if isinstance(exc, OSError) else None
    given = given_values(argv, options)
    if filename is None or any(flag in message for flag, _ in given):
        return message
    target = os.path.abspath(os.fsdecode(filename))
    shown = {(flag, value) for flag, value in given for part in value.replace("idx:", "").replace("folder:", "")
             .split(",") if part and os.path.abspath(part) == target}
    if len(shown) != 1:
        return message
    flag, value = shown.pop()
    return f"{flag} {value}: {message}"
