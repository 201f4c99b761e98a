"""``python -m minicnn``: the same as the ``minicnn`` command (see :mod:`minicnn.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
