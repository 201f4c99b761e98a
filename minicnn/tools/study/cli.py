"""The ``minicnn study`` command's arguments (:func:`add_arguments`) and action (:func:`run`).

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["--data", "digits", "--budget", "1h30m", "--layers", "conv8,maxpool,dense32"])
>>> args.data, args.budget, args.layers
(('digits',), 5400.0, ('conv8', 'maxpool', 'dense32'))
"""

import argparse
import math
import re
import time
from pathlib import Path

from .grid import MIN_SIZE

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
BUILTIN = ("digits", "mnist", "fashion-mnist")


def parse_budget(text):
    """``"30m"``, ``"2h"``, ``"1h30m"``, ``"90s"`` -> seconds (a unit is required; h, m, s once each, in order)."""
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", (text or "").strip())
    if not (text or "").strip() or not parts:
        raise argparse.ArgumentTypeError(f"expected a duration with units, e.g. 30m, 2h, 1h30m or 90s (h, m and s "
                                         f"at most once each, in that order, no spaces); received {text!r}")
    seconds = sum(float(v) * unit for v, unit in zip(parts.groups(), _UNITS.values()) if v is not None)
    if not (0 < seconds < math.inf):
        raise argparse.ArgumentTypeError(f"expected a positive, finite duration; received {text!r}")
    return seconds


def _repeated(values):
    """The first value that appears twice in ``values`` (None when all differ)."""
    seen = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    return None


def _refuse_repeats(values, what, text):
    """An ArgumentTypeError naming the first of ``values`` given twice in ``text`` (its runs would count twice)."""
    twice = _repeated(values)
    if twice is not None:
        raise argparse.ArgumentTypeError(f"{what} {twice!r} is given twice (its runs would count twice); "
                                         f"received {text!r}")


def parse_data(text):
    """Comma-separated built-in data sets, or one ``idx:IMAGES,LABELS`` or ``.npz`` file (not both)."""
    text = text.strip()
    if text.startswith("idx:"):
        paths = [p.strip() for p in text[4:].split(",")]
        if len(paths) != 2 or not all(paths):
            raise argparse.ArgumentTypeError(f"expected idx:IMAGES,LABELS (two comma-separated files); "
                                             f"received {text!r}")
        return ("idx:" + ",".join(paths),)
    names = tuple(t.strip() for t in text.split(","))
    files = [n for n in names if n.endswith(".npz") or n.startswith("idx:")]
    if files and len(names) > 1:
        raise argparse.ArgumentTypeError(f"built-in data sets and a file cannot be mixed, nor two files given: "
                                         f"study one file per run; received {text!r}")
    if files:
        return names
    bad = [n for n in names if n not in BUILTIN]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected digits, mnist, fashion-mnist (comma-separated), "
                                         f"idx:IMAGES,LABELS or a .npz file with arrays X and y; received {text!r}")
    _refuse_repeats(names, "data set", text)
    return names


def _layers(text):
    from minicnn.architecture import parse_layers

    tokens = tuple(t.strip() for t in text.split(","))
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected comma-separated layer tokens, e.g. conv16,maxpool,dense64; "
                                         f"received {text!r}")
    try:
        parse_layers(tokens)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (in {text!r})") from None
    return tokens


MAX_SEED = 2**32 - 1


def _seeds(text):
    parts = [p.strip() for p in text.split(",")]
    if not all(re.fullmatch(r"-?[0-9]+", p) for p in parts):
        raise argparse.ArgumentTypeError(f"expected a number of seeds (>= 2) or comma-separated seeds "
                                         f"(integers in [0, {MAX_SEED}]); received {text!r}")
    values = [int(p) for p in parts]
    if len(values) == 1:
        if not 2 <= values[0] <= 10_000:
            raise argparse.ArgumentTypeError(f"expected a number of seeds in [2, 10000] (paired tests need at least "
                                             f"two seeds), or comma-separated seeds; received {text!r}")
        return values[0]
    bad = [v for v in values if not 0 <= v <= MAX_SEED]
    if bad:
        raise argparse.ArgumentTypeError(f"expected seeds in [0, {MAX_SEED}] (random_state of the estimator); "
                                         f"{bad[0]} is not, in {text!r}")
    _refuse_repeats(values, "seed", text)
    return tuple(values)


def _pool_rule():
    """The per-class need of the study's validation split for 2 and 10 classes, from its rule (help text)."""
    from .data import pool_per_class

    return f"{pool_per_class(2)} per class for 2 classes, {pool_per_class(10)} for 10"


def _sizes(text):
    sizes = []
    for part in (p.strip() for p in text.split(",")):
        if part == "full":
            sizes.append(part)
        elif re.fullmatch(r"[0-9]+", part) and int(part) >= MIN_SIZE:
            sizes.append(int(part))
        else:
            raise argparse.ArgumentTypeError(f"expected comma-separated sizes (integers >= {MIN_SIZE} or 'full'); "
                                             f"{part!r} is not, in {text!r}")
    _refuse_repeats(sizes, "size", text)
    return tuple(sizes)


def _rates(text):
    try:
        rates = tuple(float(p) for p in text.split(","))
    except ValueError:
        rates = ()
    if not rates or not all(0.0 < r < 1.0 for r in rates):
        raise argparse.ArgumentTypeError(f"expected comma-separated dropout rates in (0, 1); received {text!r}")
    _refuse_repeats(rates, "rate", text)
    return rates


MAX_JOBS = 1024


def _n_jobs(text):
    if not re.fullmatch(r"-?[0-9]+", text.strip()) or not (int(text) == -1 or 1 <= int(text) <= MAX_JOBS):
        raise argparse.ArgumentTypeError(f"expected -1 (every CPU) or a number of workers in [1, {MAX_JOBS}] (at "
                                         f"most the CPUs available without --scheduler); received {text!r}")
    return int(text)


def _schedule(text):
    from minicnn.params import cli_type

    return cli_type("lr_schedule")(text)


def add_arguments(parser, param_option=None):
    """Add the study's options to ``parser`` (the ``study`` subcommand of ``minicnn``).

    ``param_option`` is ``minicnn fit``'s option builder (``minicnn.cli._param_option``, passed in by the
    command, which imports this module); with it, the estimator options are added too.
    """
    parser.add_argument("--data", type=parse_data, default=BUILTIN,
                        help="digits, mnist, fashion-mnist (comma-separated; default all three), "
                             "idx:IMAGES,LABELS or a .npz file with arrays X and y (your data)")
    parser.add_argument("--layers", type=_layers, default=None,
                        help="your model's layer tokens (required for your data), e.g. conv16,maxpool,dense64")
    parser.add_argument("--padding", choices=("same", "valid"), default="same", help="padding of --layers")
    parser.add_argument("--sizes", type=_sizes, default=None,
                        help=f"training-set sizes incl. the validation split, e.g. 1000,10000,full (each at least {MIN_SIZE}, "
                             f"below the pool's size, and holding enough of every class for the stratified "
                             f"validation split that stops training: {_pool_rule()})")
    parser.add_argument("--seeds", type=_seeds, default=None, help="number of seeds (default 10) or a list 0,1,2")
    parser.add_argument("--rates", type=_rates, default=None, help="candidate dropout rates, e.g. 0.1,0.25,0.5")
    parser.add_argument("--schedule", type=_schedule, default="cosine",
                        help="learning-rate schedule (default cosine; constant when the estimator has no "
                             "lr_schedule parameter)")
    parser.add_argument("--budget", type=parse_budget, default=None,
                        help="wall-time budget, e.g. 30m or 2h: measures the cost of a fit, then cuts rates, "
                             "sizes and seeds until the estimate fits")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny grid, verdicts not meaningful")
    parser.add_argument("--n-jobs", type=_n_jobs, default=-1, help="joblib workers (default -1: every CPU)")
    parser.add_argument("--scheduler", default=None,
                        help="Dask scheduler address (needs the distributed extra: "
                             "pip install 'dask[distributed]' dask-ml)")
    parser.add_argument("--out", default=None, help="output directory (default ./study, or docs with --docs); "
                                                     "an existing runs CSV there is resumed")
    parser.add_argument("--docs", action="store_true",
                        help="write the project's report names: STUDY.md, study_runs.csv, study_meta.json "
                             "(default --out docs)")
    parser.add_argument("--from-csv", default=None, help="re-analyse an existing runs.csv instead of training")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    if param_option is not None:
        _add_estimator_options(parser, param_option)


def _add_estimator_options(parser, param_option):
    """Every estimator parameter the study's arms and design leave alone, as ``minicnn fit`` spells it."""
    from .grid import estimator_options, profile_for_user

    user = profile_for_user(("dense8",))
    group = parser.add_argument_group("estimator options", f"CNNClassifier's parameters, set in every run and "
                                      f"recorded in the study's meta JSON. Unset: on your data the estimator's "
                                      f"defaults (shown), except --epochs {user.default_epochs} and "
                                      f"--n-iter-no-change {user.n_iter_no_change} (the early-stopping patience); "
                                      f"on the built-in data the built-in study's settings (docs/STUDY.md).")
    for p in estimator_options():
        if p.name in ("layers", "padding"):   # the options above: your model's
            continue
        flags = ["--epochs", "--max-iter"] if p.name == "max_iter" else None
        param_option(group, p, flags)   # its help shows the estimator's default ...
        action = group._group_actions[-1]
        action.default = None              # ... but unset means "the study's setting" (see the group's text)
        head, _, shown = action.help.rpartition(" (default: ")
        action.help = f"{head} (estimator default: {shown}"


def estimator_option_flags():
    """The long options :func:`_add_estimator_options` adds."""
    from .grid import estimator_options

    flags = []
    for p in estimator_options():
        if p.name not in ("layers", "padding"):
            flags.append("--epochs" if p.name == "max_iter" else "--" + p.name.replace("_", "-"))
            if p.kind == "bool":
                flags.append("--no-" + p.name.replace("_", "-"))
    return tuple(flags)


def estimator_option_values(args):
    """The estimator options given in parsed ``args``: name -> value."""
    from .grid import estimator_options

    return {p.name: getattr(args, p.name) for p in estimator_options()
            if p.name not in ("layers", "padding") and getattr(args, p.name, None) is not None}


TRAINING_OPTIONS = ("--data", "--layers", "--padding", "--sizes", "--seeds", "--rates", "--schedule", "--budget",
                    "--quick", "--n-jobs", "--scheduler") + estimator_option_flags() + ("--max-iter",)
_ALL_OPTIONS = TRAINING_OPTIONS + ("--out", "--docs", "--from-csv", "--quiet", "--debug", "--help")


def given_options(argv, repeats=False):
    """The study options named in ``argv`` (long names; argparse's unique prefixes are resolved).

    With ``repeats``, every occurrence (an option given twice is listed twice).
    """
    found = []
    for token in argv:
        if not token.startswith("--") or token == "--":
            continue
        name = token.split("=", 1)[0]
        matches = [o for o in _ALL_OPTIONS if o == name] or [o for o in _ALL_OPTIONS if o.startswith(name)]
        if len(matches) == 1 and (repeats or matches[0] not in found):
            found.append(matches[0])
    return found


def _usage_error(message):
    import sys

    print(f"minicnn study: error: {message} (see 'minicnn study --help')", file=sys.stderr)
    return 2


def run(args):
    """Run the study for parsed ``args``; print the verdicts and the recommendation; return the exit code."""
    from . import DOCS_NAMES, NAMES, report_from_csv, run_study
    from .report import recommendation_lines

    names = DOCS_NAMES if args.docs else NAMES
    out = Path(args.out or ("docs" if args.docs else "study"))

    started = time.time()
    argv = list(getattr(args, "argv", ["study"]))
    command = "minicnn " + " ".join(argv)
    options = argv[1:] if argv[:1] == ["study"] else argv
    given = given_options(options, repeats=True)
    twice = _repeated(given)
    if twice:
        return _usage_error(f"argument {twice}: given twice (only one would be used); pass it once")
    if args.from_csv:
        training = [o for o in given_options(options) if o in TRAINING_OPTIONS]
        if training:
            return _usage_error(f"{', '.join(training)} {'train' if len(training) > 1 else 'trains'}, and "
                                f"--from-csv only re-analyses the runs of its CSV: pass --from-csv with --out, "
                                f"--docs or --quiet only")
        results, meta = report_from_csv(args.from_csv, out, names)
    else:
        if "--padding" in given and args.layers is None:
            return _usage_error(f"argument --padding: applies to the model of --layers, and the built-in models have "
                                f"their own padding; pass --padding with --layers, or leave it out")
        if any(d not in BUILTIN for d in args.data) and args.layers is None:
            raise ValueError(f"--layers is required with your own data (e.g. --layers conv16,maxpool,dense64); "
                             f"received --data {args.data[0]}")
        results, meta = run_study(out, data=args.data, sizes=args.sizes, seeds=args.seeds, quick=args.quick,
                                  layers=args.layers, padding=args.padding, rates=args.rates,
                                  schedule=args.schedule, budget_s=args.budget, n_jobs=args.n_jobs,
                                  scheduler=args.scheduler, verbose=0 if args.quiet else 1,
                                  command=command.strip(), names=names, options=estimator_option_values(args))
    for r in results:
        if r.get("same_network"):
            detail = "the two arms build the same networks on this model"
        elif r["verdict"] == "not testable":
            detail = (f"{100 * r['mean']:+.2f} pp; every paired difference equal or fewer than 2 pairs: no "
                      f"variance, p undefined" if r["n"] else "no pairs")
        else:
            detail = f"{100 * r['mean']:+.2f} pp, Holm p = {r['p_holm']:.2g}"
        print(f"{r['verdict']:>15}: {r['title']} [{r['data']}, {r['size']}] ({detail})")
    for data, rec in meta.get("recommendations", {}).items():
        print("recommendation" + recommendation_lines(rec, data, results)[0][1:].replace("**", ""))
    if meta.get("warning"):
        print(meta["warning"])
    from ..._cli_report import wrote_folder

    print(wrote_folder(out, started, "each written whole, atomically"))
    return 0
