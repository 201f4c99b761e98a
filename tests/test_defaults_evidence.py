"""Defaults and README examples follow the project's own measurements (docs/STUDY.md, benchmarks/RESULTS.md)."""

import csv
import inspect
import re
import shlex
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from minicnn import params
from minicnn.placement import resolve_dropout

REPO = Path(__file__).resolve().parent.parent
#: How far (test accuracy, percentage points) a default may sit below the study's best choice on a data set.
CLOSE = 0.35


def _study_means():
    """(data, kind, rate) -> mean test accuracy (%) of the base model with dropout after the last pool, at each
    data set's largest size."""
    rows = list(csv.DictReader(open(REPO / "docs" / "study_runs.csv")))
    largest = {}
    for r in rows:
        size = r["size"]
        key = float("inf") if size == "full" else float(size)
        largest[r["data"]] = max(largest.get(r["data"], 0), key)
    scores = defaultdict(list)
    for r in rows:
        size = float("inf") if r["size"] == "full" else float(r["size"])
        if r["group"] == "base" and r["placement"] == "after_last_pool" and size == largest[r["data"]]:
            scores[r["data"], r["kind"], float(r["rate"])].append(100 * float(r["test_accuracy"]))
    return {k: float(np.mean(v)) for k, v in scores.items()}


def test_default_dropout_is_the_study_s_choice():
    defaults = params.DEFAULTS
    assert defaults["dropout"] == "after_last_pool"
    means = _study_means()
    for data in {d for d, _, _ in means}:
        best = max(v for (d, _, _), v in means.items() if d == data)
        mine = means[data, defaults["dropout_kind"], defaults["dropout_rate"]]
        assert mine >= best - CLOSE, (data, mine, best)
        for rate in {r for d, k, r in means if d == data and k == "spatial"}:   # spatial never beat element
            assert means[data, "element", rate] >= means[data, "spatial", rate] - CLOSE, (data, rate)


def test_placement_function_defaults_are_the_table_s():
    signature = inspect.signature(resolve_dropout)
    for name in ("dropout", "dropout_rate", "dropout_kind"):
        assert signature.parameters[name].default == params.DEFAULTS[name], name


def _readme_fit_commands():
    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.strip().startswith("minicnn fit"):
                yield shlex.split(line.split("#")[0])[2:]


def _results_table(heading):
    text = (REPO / "benchmarks" / "RESULTS.md").read_text()
    section = text[text.index(heading):]
    section = section[:section.find("\n## ", 1)] if "\n## " in section[1:] else section
    return {cells[0]: float(cells[1]) for cells in
            (list(map(str.strip, line.strip("|").split("|"))) for line in section.splitlines()
             if line.startswith("| ") and not line.startswith("| configuration"))
            if re.fullmatch(r"[\d.]+", cells[1])}


def test_readme_example_options_were_measured_and_help_on_digits():
    """A README `minicnn fit` line on digits with estimator options is a configuration of
    benchmarks/bench_defaults.py whose measured accuracy is at least the defaults'."""
    from minicnn import cli

    table = _results_table("## Defaults and example options on digits")
    parser = cli.build_parser()
    defaults = cli.classifier(parser.parse_args(["fit"])).get_params()
    checked = 0
    for argv in _readme_fit_commands():
        args = parser.parse_args(["fit", *argv])
        if args.data != "digits":
            continue
        changed = {k: v for k, v in cli.classifier(args).get_params().items() if v != defaults[k]}
        changed.pop("random_state", None)
        changed.pop("checkpoint_path", None)   # where progress is kept, not what is trained (resumes are bit-identical)
        if not changed:
            continue
        parts = {f"{k} {','.join(v) if isinstance(v, tuple) else v}" for k, v in changed.items()}
        name = next((n for n in table if set(n.split(", ")) == parts), None)
        assert name is not None, (parts, sorted(table))
        assert table[name] >= table["defaults"], (name, table[name], table["defaults"])
        checked += 1
    assert checked, "no README example with options on digits: drop this test or the bench configuration"


def test_no_readme_example_flips_digits():
    """A horizontal flip changes a digit (measured: benchmarks/RESULTS.md): no README command flips digit data."""
    for argv in _readme_fit_commands():
        data = argv[argv.index("--data") + 1] if "--data" in argv else "digits"
        augment = argv[argv.index("--augment") + 1] if "--augment" in argv else ""
        assert not (data in ("digits", "mnist") and "hflip" in augment), argv
