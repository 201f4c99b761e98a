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
import re
from pathlib import Path

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
BUILTIN = ("digits", "mnist", "fashion-mnist")


def parse_budget(text):
    """``"30m"``, ``"2h"``, ``"1h30m"``, ``"90s"`` -> seconds (a unit is required)."""
    parts = re.fullmatch(r"\s*((?:\d+(?:\.\d+)?[hms]\s*)+)", text or "")
    if not parts:
        raise argparse.ArgumentTypeError(f"expected a duration with units, e.g. 30m, 2h, 1h30m or 90s; "
                                         f"received {text!r}")
    seconds = sum(float(v) * _UNITS[u] for v, u in re.findall(r"(\d+(?:\.\d+)?)([hms])", text))
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration; received {text!r}")
    return seconds


def parse_data(text):
    """Comma-separated built-in data sets, or one ``idx:IMAGES,LABELS`` or ``.npz`` file."""
    if text.startswith("idx:") or text.endswith(".npz"):
        return (text,)
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [n for n in names if n not in BUILTIN]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected digits, mnist, fashion-mnist (comma-separated), "
                                         f"idx:IMAGES,LABELS or a .npz file with arrays X and y; received {text!r}")
    return names


def _layers(text):
    tokens = tuple(t.strip() for t in text.split(",") if t.strip())
    if not tokens:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer tokens, e.g. conv16,maxpool,dense64; "
                                         f"received {text!r}")
    return tokens


def _seeds(text):
    try:
        values = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seeds or comma-separated seeds; "
                                         f"received {text!r}") from None
    return values[0] if len(values) == 1 else tuple(values)


def _sizes(text):
    sizes = []
    for part in (p.strip() for p in text.split(",")):
        if part == "full":
            sizes.append(part)
        elif part.isdigit() and int(part) >= 20:
            sizes.append(int(part))
        else:
            raise argparse.ArgumentTypeError(f"expected comma-separated sizes (integers >= 20 or 'full'); "
                                             f"received {text!r}")
    return tuple(sizes)


def _rates(text):
    try:
        rates = tuple(float(p) for p in text.split(","))
    except ValueError:
        rates = ()
    if not rates or not all(0.0 < r < 1.0 for r in rates):
        raise argparse.ArgumentTypeError(f"expected comma-separated dropout rates in (0, 1); received {text!r}")
    return rates


def add_arguments(parser):
    """Add the study's options to ``parser`` (the ``study`` subcommand of ``minicnn``)."""
    parser.add_argument("--data", type=parse_data, default=BUILTIN,
                        help="digits, mnist, fashion-mnist (comma-separated; default all three), "
                             "idx:IMAGES,LABELS or a .npz file with arrays X and y (your data)")
    parser.add_argument("--layers", type=_layers, default=None,
                        help="your model's layer tokens (required for your data), e.g. conv16,maxpool,dense64")
    parser.add_argument("--padding", choices=("same", "valid"), default="same", help="padding of --layers")
    parser.add_argument("--sizes", type=_sizes, default=None,
                        help="training-set sizes incl. the validation split, e.g. 1000,10000,full")
    parser.add_argument("--seeds", type=_seeds, default=None, help="number of seeds (default 10) or a list 0,1,2")
    parser.add_argument("--rates", type=_rates, default=None, help="candidate dropout rates, e.g. 0.1,0.25,0.5")
    parser.add_argument("--schedule", default="cosine",
                        help="learning-rate schedule (default cosine; constant when the estimator has no "
                             "lr_schedule parameter)")
    parser.add_argument("--budget", type=parse_budget, default=None,
                        help="wall-time budget, e.g. 30m or 2h: measures the cost of a fit, then cuts rates, "
                             "sizes and seeds until the estimate fits")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny grid, verdicts not meaningful")
    parser.add_argument("--n-jobs", type=int, default=-1, help="joblib workers (default -1: every CPU)")
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


def run(args):
    """Run the study for parsed ``args``; print the verdicts and the recommendation; return the exit code."""
    from . import DOCS_NAMES, NAMES, report_from_csv, run_study
    from .report import recommendation_lines

    names = DOCS_NAMES if args.docs else NAMES
    out = Path(args.out or ("docs" if args.docs else "study"))

    command = "minicnn " + " ".join(getattr(args, "argv", ["study"]))
    if args.from_csv:
        results, meta = report_from_csv(args.from_csv, out, names)
    else:
        if any(d not in BUILTIN for d in args.data) and args.layers is None:
            raise ValueError(f"--layers is required with your own data (e.g. --layers conv16,maxpool,dense64); "
                             f"received --data {args.data[0]}")
        results, meta = run_study(out, data=args.data, sizes=args.sizes, seeds=args.seeds, quick=args.quick,
                                  layers=args.layers, padding=args.padding, rates=args.rates,
                                  schedule=args.schedule, budget_s=args.budget, n_jobs=args.n_jobs,
                                  scheduler=args.scheduler, verbose=0 if args.quiet else 1,
                                  command=command.strip(), names=names)
    for r in results:
        print(f"{r['verdict']:>15}: {r['title']} [{r['data']}, {r['size']}] ({100 * r['mean']:+.2f} pp, "
              f"Holm p = {r['p_holm']:.2g})")
    for data, rec in meta.get("recommendations", {}).items():
        print("recommendation" + recommendation_lines(rec, data)[0][1:].replace("**", ""))
    if meta.get("warning"):
        print(meta["warning"])
    print(f"wrote {out / names['report']}" + ("" if args.from_csv else f" and {out / names['runs']}"))
    return 0
