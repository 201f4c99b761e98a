"""The training-budget and architecture defaults (max_iter, batch_size, layers) are justified by a measurement in
docs/TRAINING.md, traced to benchmarks/bench_defaults.py: its tables are that script's output, for the
configurations it defines, and the rows marked "(default)" are the defaults the table of parameters holds."""

import re
import sys
from pathlib import Path

import pytest

from minicnn import params

from test_doc_figures import FIGURE, NOT_MEASURED, SCRIPT, _paragraphs

REPO = Path(__file__).resolve().parent.parent
HEADING = "## Why these defaults"
#: How far (test accuracy) a default may sit below the best measured configuration of its table and still count
#: as justified by it (half a point: about the seed-to-seed spread of these few-seed means).
CLOSE = 0.005


def _bench():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_defaults
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return bench_defaults


def _section():
    text = (REPO / "docs" / "TRAINING.md").read_text()
    assert HEADING in text, "docs/TRAINING.md lost its defaults section"
    section = text[text.index(HEADING):]
    return section[:section.find("\n## ", 1)] if "\n## " in section[1:] else section


def _tables():
    """(comparison, data) -> {configuration: mean test accuracy}, from the section's markdown tables."""
    tables, key = {}, None
    for line in _section().splitlines():
        heading = re.fullmatch(r"(\w+) \((digits|fashion)\)", line.strip())
        if heading:
            key = heading.groups()
            tables[key] = {}
        elif key and line.startswith("| ") and not line.startswith("| configuration"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            tables[key][cells[0]] = float(cells[1])
        elif line.strip() and not line.startswith("|"):
            key = None   # another paragraph (a confirmation run is read by its own test)
    return tables


def test_the_section_names_its_script_date_and_machine():
    section = " ".join(_section().split())
    assert "benchmarks/bench_defaults.py" in section
    assert re.search(r"\b20\d\d-\d\d-\d\d\b", section) and "CPU" in section


def test_every_table_is_a_comparison_of_the_script_on_both_data_sets():
    bench = _bench()
    tables = _tables()
    assert {c for c, _ in tables} == set(bench.ON_FASHION)
    for comparison in bench.ON_FASHION:
        for data in ("digits", "fashion"):
            assert list(tables[comparison, data]) == list(bench.COMPARISONS[comparison]), (comparison, data)


@pytest.mark.parametrize("name", ["max_iter", "batch_size", "layers"])
def test_the_default_rows_are_the_defaults_and_unsettled_ones_are_said(name):
    """A default more than half a point below a table's best is named in the section's "Not settled" paragraph (and a
    default named there is below some table's best): the doc never calls a default justified that its own
    tables contradict."""
    bench = _bench()
    default_rows = [c for c, options in bench.COMPARISONS[name].items() if not options]
    assert len(default_rows) == 1 and default_rows[0].endswith("(default)")
    value = params.DEFAULTS[name]
    shown = ",".join(value) if isinstance(value, tuple) else str(value)
    assert default_rows[0].removesuffix(" (default)") in (shown, f"{name}={shown}"), (default_rows, value)
    behind = [data for (comparison, data), table in _tables().items()
              if comparison == name and table[default_rows[0]] < max(table.values()) - CLOSE]
    unsettled = re.search(r"\*\*Not settled:\*\*(.*?)(\n\n|$)", _section(), flags=re.S)
    named = unsettled is not None and f"`{name}`" in unsettled.group(1)
    assert named == bool(behind), (name, behind, named)


def test_every_figure_of_the_training_doc_names_its_script():
    missing = [p.strip()[:160] for p in _paragraphs("docs/TRAINING.md")
               if FIGURE.search(p) and not NOT_MEASURED.search(p) and not SCRIPT.search(p)]
    assert missing == [], missing
