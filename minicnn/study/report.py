"""The study's outputs: ``runs.csv``, ``report.md`` and, with matplotlib, PNG plots."""

import csv
import platform
from pathlib import Path

import numpy as np

from .runner import CSV_FIELDS, _size_key
from .stats import ALPHA

PLOT_INSTALL = "pip install matplotlib (the plot extra of minicnn-engine)"
_GROUP_TITLES = {"main": "Base model", "batch_norm": "Base model with batch_norm=True", "deep": "Deep model"}


def write_runs(rows, path):
    """Write the run rows to a CSV file with the columns of ``CSV_FIELDS``."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in CSV_FIELDS})


def read_runs(path):
    """Read ``runs.csv`` back into typed rows.

    Raises
    ------
    ValueError
        When a column is missing or a value does not parse.
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(CSV_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: not a study runs.csv, missing columns {sorted(missing)}")
        rows = []
        for line, raw in enumerate(reader, start=2):
            try:
                rows.append(dict(raw, batch_norm=raw["batch_norm"] == "True", rate=float(raw["rate"]),
                                 n_train=int(raw["n_train"]), seed=int(raw["seed"]), epochs=int(raw["epochs"]),
                                 test_accuracy=float(raw["test_accuracy"]),
                                 train_time_s=float(raw["train_time_s"])))
            except ValueError as exc:
                raise ValueError(f"{path}, line {line}: {exc}") from None
    if not rows:
        raise ValueError(f"{path}: no runs")
    return rows


def _config_key(row):
    return (row["group"], row["placement"], row["kind"], row["rate"])


def summary_table(rows):
    """Mean +- std test accuracy per configuration and size.

    Returns
    -------
    sizes : list of str
    table : dict
        ``(group, placement, kind, rate) -> {size: (mean, std, n)}``.
    """
    sizes = sorted({r["size"] for r in rows}, key=_size_key)
    cells = {}
    for row in rows:
        cells.setdefault(_config_key(row), {}).setdefault(row["size"], []).append(row["test_accuracy"])
    table = {key: {s: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
                   for s, v in by_size.items()} for key, by_size in cells.items()}
    return sizes, table


def _pp(value):
    return "n/a" if not np.isfinite(value) else f"{100 * value:+.2f}"


def _p(value):
    return "n/a" if not np.isfinite(value) else (f"{value:.2g}" if value >= 1e-4 else "<1e-4")


def _p_is(value):
    text = _p(value)
    return "< 1e-4" if text == "<1e-4" else f"= {text}"


def _setup_lines(rows, meta):
    sizes = sorted({(r["size"], r["n_train"]) for r in rows}, key=lambda s: _size_key(s[0]))
    seeds = sorted({r["seed"] for r in rows})
    models = {}
    for row in rows:
        models.setdefault(row["model"], row["layers"])
    epochs = {}
    for row in rows:
        epochs.setdefault(row["size"], row["epochs"])
    trained = [r for r in rows if not r["same_as"]]
    lines = [
        f"- Data: **{meta.get('data', '?')}**, fixed held-out test set of {meta.get('n_test', '?')} images; "
        f"training subsets drawn (stratified) from a pool of {meta.get('n_pool', '?')} images.",
        "- Training-set sizes: " + ", ".join(f"{s} ({n} images, {epochs[s]} epochs)" for s, n in sizes)
        + f"; a budget of {meta.get('steps', '?')} gradient steps per run (at least 10 epochs; batch "
          f"{meta.get('batch_size', '?')}, Adam, learning rate {meta.get('learning_rate', '?')}, padding 'same').",
        f"- Seeds: {len(seeds)} ({', '.join(map(str, seeds))}); a seed fixes the training subset and the "
        "initialization, so runs with the same size and seed are paired across configurations.",
        *[f"- Model `{name}`: layers `{layers}` (+ a softmax output layer)." for name, layers in models.items()],
        f"- Runs: {len(trained)} trained, {len(rows)} rows (configurations whose dropout resolves to the same "
        "network share one run; `same_as` in the CSV names it). Study kind 'spatial' = `dropout_kind=\"auto\"` "
        "(channel dropout on maps, element-wise on vectors).",
        f"- Total training time {sum(r['train_time_s'] for r in trained):.0f} s (sum over runs); wall time "
        f"{meta.get('wall_time_s', float('nan')):.0f} s with n_jobs={meta.get('n_jobs', '?')} on "
        f"{meta.get('machine', platform.machine())}"
        + (f" (load average {meta['load_average']} while it ran: the machine was shared, so times are "
           "inflated)" if meta.get("load_average") else "") + ".",
    ]
    return lines


def render(rows, primary, exploratory, meta, plots=()):
    """The Markdown report as a string."""
    out = ["# Where to add dropout: the placement study", "",
           "Generated by " + (f"`{meta['command']}`" if meta.get("command") else "`minicnn study`") + ".",
           "It tests the claims of the blog post \"Where to Add Dropout in Neural Network?\" on a held-out test "
           "set. (The post also says that at test time outputs are \"scaled down by the dropout rate\": with "
           "classic dropout they are scaled by the *keep* probability 1 - rate; minicnn uses inverted dropout, "
           "which scales kept units by 1 / (1 - rate) during training instead.)", "",
           "## Setup", "", *_setup_lines(rows, meta), "",
           "## Verdicts", "",
           f"Paired differences in test accuracy (treatment minus control, percentage points), one per "
           f"(size, seed) block after averaging the matching runs; two-sided paired t-test "
           f"(`scipy.stats.ttest_rel`), alpha = {ALPHA}, Holm correction over the {len(primary)} claims; "
           f"Wilcoxon signed-rank p (`scipy.stats.wilcoxon`) as a distribution-free check.", "",
           "| claim | contrast | pairs | mean diff (pp) | 95% CI (pp) | t-test p | Holm p | Wilcoxon p | verdict |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in primary:
        out.append(f"| {r['title']} | {r['description']} | {r['n']} | {_pp(r['mean'])} | "
                   f"[{_pp(r['ci_low'])}, {_pp(r['ci_high'])}] | {_p(r['p_t'])} | {_p(r['p_holm'])} | "
                   f"{_p(r['p_wilcoxon'])} | **{r['verdict']}** |")
    out.append("")
    for r in primary:
        out.append(f"- Verdict: **{r['verdict']}** — \"{r['title']}\": {_pp(r['mean'])} pp "
                   f"({100 * r['treatment_mean']:.2f}% vs {100 * r['control_mean']:.2f}%), paired t-test "
                   f"p {_p_is(r['p_t'])}, Holm-adjusted p {_p_is(r['p_holm'])}, n = {r['n']} pairs.")
    out += ["", "### The claims by dropout rate and by training-set size", "",
            "Mean paired difference in pp (uncorrected t-test p in parentheses); descriptive, not part of the "
            "verdicts.", "", "| claim | by rate | by size |", "|---|---|---|"]
    for r in primary:
        parts = []
        for axis, fmt in (("rate", "{:g}"), ("size", "{}")):
            cells = r["breakdown"][axis]
            parts.append("; ".join(f"{fmt.format(k)}: {_pp(v['mean'])} ({_p(v['p_t'])})" for k, v in cells.items()))
        out.append(f"| {r['title']} | {parts[0]} | {parts[1]} |")
    out += ["", "## Exploratory contrasts (uncorrected, for context)", "",
            "| contrast | pairs | mean diff (pp) | 95% CI (pp) | t-test p | Wilcoxon p |", "|---|---|---|---|---|---|"]
    for r in exploratory:
        out.append(f"| {r['description']} | {r['n']} | {_pp(r['mean'])} | [{_pp(r['ci_low'])}, {_pp(r['ci_high'])}] "
                   f"| {_p(r['p_t'])} | {_p(r['p_wilcoxon'])} |")
    out += ["", "## Test accuracy per configuration (mean ± std over seeds, %)", ""]
    sizes, table = summary_table(rows)
    for group in ("main", "batch_norm", "deep"):
        keys = sorted((k for k in table if k[0] == group), key=lambda k: (k[1] != "none", k[1], k[2], k[3]))
        if not keys:
            continue
        out += [f"### {_GROUP_TITLES[group]}", "", "| placement | kind | rate | " + " | ".join(
            f"size {s}" for s in sizes) + " |", "|---|---|---|" + "---|" * len(sizes)]
        for key in keys:
            cells = [table[key].get(s) for s in sizes]
            text = [f"{100 * c[0]:.2f} ± {100 * c[1]:.2f}" if c else "" for c in cells]
            rate = "-" if key[1] == "none" else f"{key[3]:g}"
            out.append(f"| {key[1]} | {key[2]} | {rate} | " + " | ".join(text) + " |")
        out.append("")
    out += ["## Caveats", "",
            "- Every run gets the same budget of gradient steps; heavy dropout (many layers, rate 0.5) may need "
            "longer training than this budget, so part of its penalty is slower convergence.",
            "- Verdicts average over the rates 0.1 / 0.25 / 0.5: a collapse at one rate can dominate the mean; "
            "the by-rate breakdown above shows where an effect comes from.",
            "- The models are small and the data set easy; effects on larger networks and data (e.g. "
            "`minicnn study --data mnist`) can differ. 'Does not hold' means the recommended choice was "
            "significantly *worse* here, 'not significant' that no difference was detected.", ""]
    out += ["## Plots", ""]
    if plots:
        out += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    else:
        out.append(f"matplotlib is not installed, so no plots were drawn: `{PLOT_INSTALL}` and run the study again "
                   "(or `minicnn study --from-csv runs.csv`).")
    out += ["", "## How to reproduce", "", "```", meta.get("command") or "minicnn study",
            "minicnn study --from-csv runs.csv --out DIR   # re-analyse (and plot) without training", "```", ""]
    return "\n".join(out)


def plot(rows, primary, out_dir):
    """Draw the PNG plots when matplotlib is installed; return their paths (empty without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out_dir = Path(out_dir)
    sizes, table = summary_table(rows)
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, kind in zip(axes, ("element", "spatial")):
        placements = sorted({k[1] for k in table if k[0] == "main"})
        for name in placements:
            means = []
            for size in sizes:
                cell = [table[k][size][0] for k in table
                        if k[0] == "main" and k[1] == name and k[2] in (kind, "-") and size in table[k]]
                means.append(100 * np.mean(cell) if cell else np.nan)
            ax.plot(range(len(sizes)), means, marker="o", label=name)
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_xlabel("training-set size")
        ax.set_title(f"base model, {kind} dropout (mean over rates)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "study_accuracy_by_size.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 3.5))
    names = [r["key"] for r in primary]
    means = np.array([100 * r["mean"] for r in primary])
    low = means - np.array([100 * r["ci_low"] for r in primary])
    high = np.array([100 * r["ci_high"] for r in primary]) - means
    ax.errorbar(means, range(len(names)), xerr=[np.nan_to_num(low), np.nan_to_num(high)], fmt="o", capsize=4)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("treatment - control, test accuracy (pp), 95% CI")
    ax.set_title("claims: positive = the claim's recommendation is better")
    fig.tight_layout()
    paths.append(out_dir / "study_claims.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
