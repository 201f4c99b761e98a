"""The study's outputs: typed rows of ``runs.csv``, ``report.md`` and, with matplotlib, PNG plots."""

import math
from pathlib import Path

import numpy as np

from ...files import write_bytes
from .runner import CSV_FIELDS, read_csv
from .stats import ALPHA

PLOT_INSTALL = "pip install matplotlib (the plot extra of minicnn-engine)"
NOT_MEANINGFUL = ("NOT MEANINGFUL: this was a {why} run; its verdicts and recommendation are not meaningful "
                  "evidence (too few seeds, rates, sizes or epochs). Run the full study for real verdicts.")
_GROUPS = {"base": "base model", "bn": "base model with batch_norm=True", "deep": "deep model",
           "resdeep": "deep residual model (batch_norm=True)",
           "keras": "Keras MNIST CNN", "user": "your model"}


def _bool(text):
    if text not in ("True", "False"):
        raise ValueError(f"expected True or False, received {text!r}")
    return text == "True"


def typed(raw):
    """One CSV row (strings) with numbers and booleans parsed.

    Raises
    ------
    ValueError
        For a value that does not parse (a boolean other than True/False, a size other than an int or "full").
    """
    if raw["size"] != "full" and not raw["size"].isdigit():
        raise ValueError(f"size: expected an integer or 'full', received {raw['size']!r}")
    return _validated(_typed(raw))


PLACEMENTS = ("none", "after_last_pool", "after_each_layer", "last:1", "last:2")
KINDS = ("-", "element", "spatial")


def _check(column, ok, value, expected):
    if not ok:
        raise ValueError(f"column {column}: expected {expected}, received {value!r}")


def _validated(row):
    """Refuse values a study never writes (hand-edited or damaged rows): ranges and known names, per column."""
    for column in ("val_accuracy", "test_accuracy"):
        _check(column, 0.0 <= row[column] <= 1.0, row[column], "an accuracy in [0, 1]")
    _check("group", row["group"] in _GROUPS, row["group"], f"one of {', '.join(_GROUPS)}")
    _check("placement", row["placement"] in PLACEMENTS, row["placement"], f"one of {', '.join(PLACEMENTS)}")
    none = row["placement"] == "none"
    _check("kind", row["kind"] == "-" if none else row["kind"] in KINDS[1:], row["kind"],
           "'-' for placement none" if none else "element or spatial")
    _check("rate", row["rate"] == 0.0 if none else 0.0 < row["rate"] < 1.0, row["rate"],
           "0.0 for placement none" if none else "a dropout rate in (0, 1)")
    _check("max_epochs", row["max_epochs"] >= 1, row["max_epochs"], "an epoch budget >= 1")
    _check("epochs", 1 <= row["epochs"] <= row["max_epochs"], row["epochs"],
           f"epochs trained in [1, max_epochs={row['max_epochs']}]")
    _check("n_train", row["n_train"] >= 1, row["n_train"], "a training-set size >= 1")
    _check("seed", row["seed"] >= 0, row["seed"], "a seed >= 0")
    _check("size", row["size"] == "full" or int(row["size"]) >= 1, row["size"], "a size >= 1 or full")
    # a diverged run may end with a NaN or infinite loss (it counts as not trained); a negative one is impossible
    _check("final_train_loss", not row["final_train_loss"] < 0, row["final_train_loss"], "a loss >= 0")
    _check("train_time_s", math.isfinite(row["train_time_s"]) and row["train_time_s"] >= 0, row["train_time_s"],
           "a finite number of seconds >= 0")
    return row


def _typed(raw):
    bool_fields = {k: _bool(raw[k]) for k in ("batch_norm", "stopped_early", "did_not_train")}
    return dict(raw, **bool_fields, rate=float(raw["rate"]), n_train=int(raw["n_train"]),
                seed=int(raw["seed"]), max_epochs=int(raw["max_epochs"]), epochs=int(raw["epochs"]),
                final_train_loss=float(raw["final_train_loss"]), val_accuracy=float(raw["val_accuracy"]),
                test_accuracy=float(raw["test_accuracy"]), train_time_s=float(raw["train_time_s"]))


def read_runs(path, advice="delete it or choose another --out directory", allow_empty=False):
    """Read a study ``runs.csv`` into typed rows.

    Raises
    ------
    ValueError
        When a column is missing, a value does not parse, or there are no runs (unless ``allow_empty``); the
        message names the file (and the line).
    FileNotFoundError
        When ``path`` does not exist.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such runs CSV")
    rows = []
    for line, raw in enumerate(read_csv(path, advice), start=2):
        try:
            rows.append(typed(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}, line {line}: {exc}; {advice}") from None
    if not rows and not allow_empty:
        raise ValueError(f"{path}: no runs in it")
    return rows


def check_one_study(rows, path):
    """Refuse rows of different study runs in one CSV (they would be pooled as more seeds).

    One run trains each (data set, configuration, size, seed) once, with one schedule, one epoch budget per size
    and one set of layers per model.

    Raises
    ------
    ValueError
        Naming ``path`` and what differs.
    """
    seen, values = {}, {}
    for row in rows:
        key = (row["data"], row["group"], row["placement"], row["kind"], row["rate"], row["size"], row["seed"])
        if key in seen:
            raise ValueError(f"{path}: holds the run {'/'.join(map(str, key))} twice (max_epochs {seen[key]} and "
                             f"{row['max_epochs']}): rows of different study runs, which would count as more seeds; "
                             f"re-analyse one run's rows at a time")
        seen[key] = row["max_epochs"]
        for what, where, value in (("max_epochs", f"{row['data']} size {row['size']}", row["max_epochs"]),
                                   ("schedule", row["data"], row["schedule"]),
                                   ("layers", f"{row['data']} model {row['group']}", row["layers"]),
                                   ("n_train", f"{row['data']} size {row['size']}", row["n_train"])):
            first = values.setdefault((what, where), value)
            if first != value:
                raise ValueError(f"{path}: holds runs of different study settings ({what} {first} and {value} for "
                                 f"{where}), which would be pooled as more seeds; re-analyse one run's rows at a "
                                 f"time")


def _pp(value):
    return "n/a" if not np.isfinite(value) else f"{100 * value:+.2f}"


def _p(value):
    return "n/a" if not np.isfinite(value) else (f"{value:.2g}" if value >= 1e-4 else "<1e-4")


def _ci_text(low, high):
    """A difference's 95% interval in pp, clipped to [-100, +100] (a difference of accuracies cannot leave it)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "n/a"
    if low < -1 or high > 1:
        return f"[{_pp(max(low, -1.0))}, {_pp(min(high, 1.0))}] (clipped: uninformative)"
    return f"[{_pp(low)}, {_pp(high)}]"


def _size_key(size):
    return (1, 0) if size == "full" else (0, int(size))


def seeds_per_block(rows):
    """The fewest seeds of any (data set, model, size) block of ``rows`` (0 without rows)."""
    blocks = {}
    for row in rows:
        blocks.setdefault((row["data"], row["group"], row["size"]), set()).add(row["seed"])
    return min((len(s) for s in blocks.values()), default=0)


def warning_text(meta):
    """The "not meaningful" sentence for quick, too-small, over-budget or unknown runs (None for a real study)."""
    why = [w for w, on in (("--quick smoke", meta.get("quick")),
                           (f"fewer-than-10-seeds ({meta.get('n_seeds')})", meta.get("few_seeds")),
                           ("over-budget", meta.get("over_budget")),
                           (f"settings-unknown ({meta.get('unknown_settings')})", meta.get("unknown_settings")))
           if on]
    return NOT_MEANINGFUL.format(why=" and ".join(why)) if why else None


def _setup(rows, meta):
    trained = [r for r in rows if not r["same_as"]]
    lines = []
    for data in sorted({r["data"] for r in rows}):
        mine = [r for r in rows if r["data"] == data]
        sizes = sorted({(r["size"], r["n_train"], r["max_epochs"]) for r in mine}, key=lambda s: _size_key(s[0]))
        seeds = sorted({r["seed"] for r in mine})
        info = meta.get("data_info", {}).get(data, {})
        lines.append(f"- **{data}**: test set of {info.get('n_test', '?')} images (never used to choose); "
                     f"training subsets of " + ", ".join(f"{s} ({n} images, at most {e} epochs)"
                                                         for s, n, e in sizes)
                     + f" drawn from a pool of {info.get('n_pool', '?')}; {len(seeds)} seeds.")
    models = {}
    for row in rows:
        models.setdefault(row["group"], (row["layers"], row["batch_norm"]))
    lines += [f"- {_GROUPS.get(g, g)} (`{g}`): layers `{layers}`" + (", batch_norm=True" if bn else "")
              for g, (layers, bn) in models.items()]
    schedules = sorted({r["schedule"] for r in rows})
    lines += [
        f"- Training: Adam, batch {meta.get('batch_size', 32)}, learning rate {meta.get('learning_rate', '?')}, "
        f"learning-rate schedule {', '.join(schedules)}"
        + (" (this estimator has no `lr_schedule` parameter, so the schedule is constant)"
           if schedules == ["constant"] and meta.get("schedule") not in (None, "constant") else "")
        + f"; early stopping on a validation split of 20% of each training subset (patience "
          f"{meta.get('patience', '?')} epochs, best weights kept). The same split chooses the rates.",
        f"- Runs: {len(trained)} trained ({len(rows)} rows; configurations that build the same network share a "
        f"run, `same_as` names it). {sum(r['stopped_early'] for r in trained)} stopped early, "
        f"{sum(not r['stopped_early'] for r in trained)} used their whole epoch budget; "
        f"**{sum(r['did_not_train'] for r in trained)} did not train** (final training loss > 0.9 ln(classes)).",
        f"- Wall time {meta.get('wall_time_s', float('nan')) / 60:.0f} min with n_jobs={meta.get('n_jobs', '?')} "
        f"on {meta.get('machine', '?')}; training time summed over runs "
        f"{sum(r['train_time_s'] for r in trained) / 60:.0f} min."
        + (f" Load average {meta['load_average']} while it ran (shared machine)." if meta.get("load_average")
           else ""),
    ]
    if meta.get("estimated_wall_s"):
        lines.append("- Estimated wall time before the run: " + ", ".join(
            f"{d} {s / 60:.0f} min" for d, s in meta["estimated_wall_s"].items())
            + " (from CPU time, assuming free CPUs: a loaded machine takes longer).")
    for data, cut in meta.get("default_cuts", {}).items():
        lines.append(f"- Left out of the {data} grid: {cut}.")
    if meta.get("cuts"):
        lines.append("- Cut to fit the wall-time budget: " + "; ".join(meta["cuts"]) + ".")
    return lines


def _verdict_table(results):
    out = ["| claim (source) | data | size | chosen on validation: treatment / control | pairs | mean diff (pp) "
           "| 95% CI (pp) | d_z | p | Holm p | not trained | verdict |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        chosen = (", ".join(f"{k} x{v}" for k, v in list(r["chosen_treatment"].items())[:3]) + " / "
                  + ", ".join(f"{k} x{v}" for k, v in list(r["chosen_control"].items())[:3]))
        d_z = "n/a" if not np.isfinite(r["d_z"]) else f"{r['d_z']:+.2f}"
        ci = _ci_text(r["ci_low"], r["ci_high"])
        out.append(f"| {r['title']} ({r['source']}) | {r['data']} | {r['size']} | {chosen} | {r['n']} | "
                   f"{_pp(r['mean'])} | {ci} | {d_z} | {_p(r['p_t'])} | "
                   f"{_p(r['p_holm'])} | {r['not_trained']} | **{r['verdict']}** |")
    return out


def _accuracy_tables(rows):
    out = []
    for data in sorted({r["data"] for r in rows}):
        mine = [r for r in rows if r["data"] == data]
        sizes = sorted({r["size"] for r in mine}, key=_size_key)
        out += [f"### {data}", "", "| model | placement | kind | rate | " + " | ".join(f"size {s}" for s in sizes)
                + " |", "|---|---|---|---|" + "---|" * len(sizes)]
        cells = {}
        for r in mine:
            cells.setdefault((r["group"], r["placement"], r["kind"], r["rate"]), {}).setdefault(
                r["size"], []).append(r["test_accuracy"])
        for key in sorted(cells, key=lambda k: (k[0], k[1] != "none", k[1], k[2], k[3])):
            text = []
            for s in sizes:
                v = cells[key].get(s)
                text.append(f"{100 * np.mean(v):.2f} ± {100 * np.std(v, ddof=1) if len(v) > 1 else 0:.2f}"
                            if v else "")
            out.append(f"| {key[0]} | {key[1]} | {key[2]} | {'-' if key[1] == 'none' else f'{key[3]:g}'} | "
                       + " | ".join(text) + " |")
        out.append("")
    return out


def _config_text(placement, kind, rate):
    return "no dropout" if placement == "none" else f"{placement} {kind} {rate:g}"


def uncertainty_sentence(rec, data, results=()):
    """One plain sentence on how sure the recommendation for ``data`` is (from the tests in ``results``)."""
    mine = [r for r in results if r.get("data") == data and r.get("verdict") in ("holds", "does not hold",
                                                                               "not significant")]
    found = [r for r in mine if r["verdict"] != "not significant"]
    best = rec.get("best_test")
    other = (best is not None and (best["placement"], best["kind"], best["rate"])
             != (rec["placement"], rec["kind"], rec["rate"]) and best["mean"] > rec["test_mean"])
    if mine and not found:
        text = (f"How sure: not sure. None of the {len(mine)} tests on {data} found a difference larger than "
                f"the seed-to-seed noise, so the placements are a tie here and this pick only breaks it by "
                f"validation accuracy")
    elif mine:
        text = (f"How sure: {len(found)} of the {len(mine)} tests on {data} found a real difference (see the "
                f"verdicts); where they found none, this pick is a tie broken by validation accuracy")
    else:
        text = f"How sure: no test was run on {data}, so this pick is only the best validation accuracy"
    if other:
        text += (f"; the best test mean in the table, {100 * best['mean']:.2f}% "
                 f"({_config_text(best['placement'], best['kind'], best['rate'])}), is not a better choice, "
                 f"since picking by test accuracy would fit the noise of the test set")
    return text + "."


def recommendation_lines(rec, data, results=()):
    """The report's closing recommendation for ``data``, with how sure it is (given the tests' ``results``)."""
    if rec is None:
        return [f"- {data}: no runs to recommend from."]
    what = "no dropout" if rec["placement"] == "none" else (
        f"`dropout=\"{rec['placement']}\"`, `dropout_rate={rec['rate']:g}`, "
        f"`dropout_kind=\"{'auto' if rec['kind'] == 'spatial' else 'element'}\"`")
    vs = rec["vs_none"]
    low, high = rec["test_ci"]
    clipped = low < 0 or high > 1
    note = (f"; clipped to [0, 100]: with {rec['n_seeds']} seeds the interval is uninformative" if clipped else "")
    line = (f"- **{data}** ({_GROUPS.get(rec['group'], rec['group'])}, {rec['size']} training images): {what} — "
            f"test accuracy {100 * rec['test_mean']:.2f}% (95% CI [{100 * max(low, 0.0):.2f}, "
            f"{100 * min(high, 1.0):.2f}]{note}, {rec['n_seeds']} seeds)")
    if rec["placement"] != "none" and vs["n"]:
        line += f", {_pp(vs['mean'])} pp vs no dropout (95% CI {_ci_text(vs['ci_low'], vs['ci_high'])})"
    return [line + ". Chosen by mean validation accuracy; the test set only reports it. "
            + uncertainty_sentence(rec, data, results)]


def render(rows, results, recommendations, meta, plots=()):
    """The Markdown report as a string.

    Parameters
    ----------
    rows : list of dict
    results : list of dict
        From :func:`minicnn.tools.study.stats.analyse`.
    recommendations : dict
        data set -> :func:`minicnn.tools.study.stats.recommend` result.
    meta : dict
        Run facts (command, wall time, machine, quick, over_budget, cuts, ...).
    plots : sequence of path
    """
    warning = warning_text(meta)
    banner = [f"> **{warning}**", ""] if warning else []
    out = ["# Where to add dropout: the placement study", "", *banner,
           "Generated by " + (f"`{meta['command']}`" if meta.get("command") else "`minicnn study`") + ".",
           "It tests the claims of the blog post \"Where to Add Dropout in Neural Network?\" and of the papers "
           "it leans on. (The post says that at test time outputs are \"scaled down by the dropout rate\": with "
           "classic dropout they are scaled by the *keep* probability 1 - rate; minicnn uses inverted dropout.)",
           "", "## Setup", "", *_setup(rows, meta), "", "## Verdicts", "",
           f"In every (data set, size, seed) block each arm is represented by its configuration with the best "
           f"**validation** accuracy (the rate, and for arms with two placements the placement, is chosen there; "
           f"the column 'chosen' counts the choices). The chosen runs' test accuracies give one paired "
           f"difference per seed (treatment minus control, percentage points): two-sided paired t-test "
           f"(`scipy.stats.ttest_rel`), alpha = {ALPHA}, Holm correction over all {len(results)} tests below; "
           f"d_z = mean / std of the differences. The small-sets claim compares the gain of dropout at the "
           f"largest size with the gain at the smallest (Welch's t-test, `scipy.stats.ttest_ind`). Per data set "
           f"and per size: sizes are never pooled.", "", *_verdict_table(results), "",
           "## Test accuracy per configuration (mean ± std over seeds, %)", "", *_accuracy_tables(rows),
           "## Caveats", "",
           "- 'Does not hold' means the recommended choice was significantly *worse* here; 'not significant' that "
           "no difference was detected with these seeds (not that there is none: read the interval); 'not "
           "testable' that the paired differences had no variance (fewer than 2 pairs, or all equal), so no "
           "p-value or interval exists.",
           "- The validation split that chooses rates also stops training, so validation accuracies are slightly "
           "optimistic; this is the same for every arm, and the test set stays untouched.",
           *(["- 1000 MNIST images are not Srivastava et al.'s 'very small' sets (100-500); digits' 100 is."]
             if any(r["data"] in ("mnist", "fashion-mnist") for r in rows) else []), "",
           "## Plots", ""]
    if plots:
        out += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    else:
        out.append(f"matplotlib is not installed, so no plots were drawn: `{PLOT_INSTALL}` and run "
                   "`minicnn study --from-csv runs.csv`.")
    out += ["", "## Recommendation", ""]
    for data, rec in recommendations.items():
        out += recommendation_lines(rec, data, results)
    if warning:
        out += ["", f"**{warning}**"]
    out += ["", "## How to reproduce", "", "```", meta.get("command") or "minicnn study",
            "minicnn study --from-csv runs.csv --out DIR   # re-analyse (and plot) without training", "```", ""]
    return "\n".join(out)


def _save_figure(fig, path):
    """Save ``fig`` (format from the suffix, else PNG) atomically: a failed write leaves the previous plot whole."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format=Path(path).suffix[1:] or "png")
    write_bytes(path, buffer.getvalue())


def _suptitle(fig, text, fontsize=11):
    """A figure title wrapped to the figure's width (a one-panel figure clipped the one-line title), then the
    layout tightened below it."""
    import textwrap

    width_chars = max(20, int(fig.get_figwidth() * 72 / (0.6 * fontsize)))
    title = fig.suptitle(textwrap.fill(text, width_chars), fontsize=fontsize)
    fig.tight_layout()
    return title


def plot(rows, results, out_dir):
    """Accuracy vs training-set size per placement (one panel per data set and model), and the claims' effects.

    Returns
    -------
    list of Path
        The PNG files written (empty without matplotlib).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out_dir = Path(out_dir)
    paths = []
    panels = sorted({(r["data"], r["group"]) for r in rows})
    cols = min(3, len(panels))
    fig, axes = plt.subplots(math.ceil(len(panels) / cols), cols, figsize=(5 * cols, 3.6 * math.ceil(len(panels)
                                                                                                   / cols)),
                             squeeze=False)
    for ax, (data, group) in zip(axes.flat, panels):
        mine = [r for r in rows if r["data"] == data and r["group"] == group]
        sizes = sorted({r["size"] for r in mine}, key=_size_key)
        for name in sorted({(r["placement"], r["kind"]) for r in mine}, key=lambda k: (k[0] != "none", k)):
            means, errs = [], []
            for size in sizes:   # per seed: the rate chosen on validation, then its test accuracy
                best = {}
                for r in mine:
                    if (r["placement"], r["kind"]) == name and r["size"] == size:
                        if r["seed"] not in best or r["val_accuracy"] > best[r["seed"]]["val_accuracy"]:
                            best[r["seed"]] = r
                acc = [100 * r["test_accuracy"] for r in best.values()]
                means.append(np.mean(acc) if acc else np.nan)
                errs.append(np.std(acc, ddof=1) / np.sqrt(len(acc)) if len(acc) > 1 else 0.0)
            label = name[0] if name[0] == "none" else f"{name[0]} ({name[1]})"
            ax.errorbar(range(len(sizes)), means, yerr=errs, marker="o", capsize=3, label=label)
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_title(f"{data}: {_GROUPS.get(group, group)}", fontsize=10)
        ax.set_xlabel("training-set size")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    _suptitle(fig, "test accuracy vs training-set size, rate chosen on validation per seed (± s.e.)")
    paths.append(out_dir / "study_accuracy_by_size.png")
    _save_figure(fig, paths[-1])
    plt.close(fig)

    if results:
        fig, ax = plt.subplots(figsize=(9, 0.35 * len(results) + 1.5))
        names = [f"{r['key']} | {r['data']} | {r['size']}" for r in results]
        means = np.array([100 * r["mean"] for r in results])
        low = np.nan_to_num(means - np.array([100 * r["ci_low"] for r in results]))
        high = np.nan_to_num(np.array([100 * r["ci_high"] for r in results]) - means)
        colors = ["tab:green" if r["verdict"] == "holds" else "tab:red" if r["verdict"] == "does not hold"
                  else "tab:gray" for r in results]
        for i in range(len(results)):
            ax.errorbar(means[i], i, xerr=[[low[i]], [high[i]]], fmt="o", capsize=3, color=colors[i])
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("treatment - control, test accuracy (pp), 95% CI; green holds, red does not, grey n.s.")
        fig.tight_layout()
        paths.append(out_dir / "study_claims.png")
        _save_figure(fig, paths[-1])
        plt.close(fig)
    return paths


__all__ = ["CSV_FIELDS", "read_runs", "render", "plot", "warning_text", "typed", "check_one_study",
           "seeds_per_block"]
