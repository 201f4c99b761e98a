"""Every measured figure in the docs names the script that produced it; the cheap ones are re-measured here."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: The prose docs whose measured figures must each name their script (RESULTS.md and STUDY.md are the outputs of
#: `minicnn bench`/`minicnn study` and say so at their top).
DOCS = ["README.md", "docs/CLUSTER.md", "docs/EMBEDDING.md", "minicnn/estimator.py"]
#: A measured figure: a duration, a size, a speed ratio, a measured accuracy.
FIGURE = re.compile(r"\b\d+(\.\d+)?(-\d+(\.\d+)?)? ?(s|ms|us|min|minutes|MB|GB|x faster|x as fast)\b"
                    r"|\baccuracy (of )?0\.\d{2,}|\b0\.\d{3}\b.*\b(accuracy|with \")")
#: What names a script: a benchmark file, `minicnn bench`/`study`, or the results page a script writes.
SCRIPT = re.compile(r"benchmarks/\w+\.py|minicnn (bench|study)|benchmarks/RESULTS\.md|docs/STUDY\.md|STUDY\.md")
#: Figures that are not measurements (limits, settings, examples of syntax).
NOT_MEASURED = re.compile(r"--budget \d+m|timeout|at most|\blimit\b|e\.g\. `?\d|NUMBA_CACHE_DIR|up to")


def _paragraphs(path):
    text = (REPO / path).read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)    # commands and code are not claims
    if path.endswith(".py"):   # a docstring: one paragraph per numpydoc parameter entry
        text = re.sub(r"\n(?=    \w[\w, ]* : )", "\n\n", text)
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


@pytest.mark.parametrize("doc", DOCS)
def test_every_figure_bearing_paragraph_names_its_script(doc):
    missing = [p.strip()[:160] for p in _paragraphs(doc)
               if FIGURE.search(p) and not NOT_MEASURED.search(p) and not SCRIPT.search(p)]
    assert missing == [], missing


def test_readme_prose_holds_no_measured_numbers():
    """Measured numbers live in benchmarks/RESULTS.md and docs/STUDY.md; the README links to them."""
    hits = [p.strip()[:160] for p in _paragraphs("README.md") if FIGURE.search(p)]
    assert hits == []


def test_cluster_pickle_sizes_are_what_the_script_measures():
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from bench_pickle_size import sizes
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    text = " ".join((REPO / "docs" / "CLUSTER.md").read_text().split())
    quoted = re.search(r"pickles .*?: ([\d.]+) MB .*? against ([\d.]+) MB of weights .*?a ([\d.]+) MB file", text)
    assert quoted, "the pickle-size sentence of docs/CLUSTER.md changed: update this test"
    measured = sizes()
    for value, name in zip(quoted.groups(), ("pickle", "weights", "file")):
        assert float(value) == pytest.approx(measured[name], rel=0.1), (name, value, measured)
