"""The blog post's claims as paired contrasts, tested over seeds, with Holm's correction.

Each claim compares a *treatment* set of runs with a *control* set. Within
one block (a training-set size and a seed: same training images, same
initialization) the accuracies of the matching runs are averaged (over rates,
and over kinds or placements when the claim pools them), giving one paired
difference ``treatment - control`` per block. The claim *holds* when the mean
difference is positive and a two-sided paired t-test (``scipy.stats.ttest_rel``)
rejects "no difference" at ``alpha`` after Holm's correction over the primary
claims; it *does not hold* when the difference is significant the other way;
otherwise it is *not significant*. The Wilcoxon signed-rank test
(``scipy.stats.wilcoxon``) is reported next to it as a distribution-free check
(with fewer than 6 pairs it cannot reach p < 0.05).
"""

from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
HOLDS, FAILS, NOT_SIGNIFICANT = "holds", "does not hold", "not significant"


@dataclass(frozen=True)
class Contrast:
    """A paired comparison of two sets of runs.

    Attributes
    ----------
    key : str
    title : str
        The claim in the blog's words.
    treatment, control : dict
        Row filters: column -> allowed values (a tuple) or a single value.
    description : str
        What is compared, in plain words.
    smallest_size_only : bool
        Restrict to the smallest training-set size of the study.
    """

    key: str
    title: str
    treatment: dict
    control: dict
    description: str
    smallest_size_only: bool = False


PRIMARY = (
    Contrast("after_last_pool", "After the last pooling layer is a good default",
             dict(group="main", placement="after_last_pool", kind="element"), dict(group="main", placement="none"),
             "base model: dropout after the last pool (element-wise, mean over rates) minus no dropout"),
    Contrast("every_layer_deep", "For a very deep network, add dropout after each layer",
             dict(group="deep", placement="after_each_layer"), dict(group="deep", placement="after_last_pool"),
             "deep model: dropout after every conv/dense layer minus after the last pool only (mean over rates)"),
    Contrast("last_layers_small_data", "On a small data set, dropout only in the last layers beats every layer",
             dict(group="main", placement=("last:1", "last:2"), kind="element"),
             dict(group="main", placement="after_each_layer", kind="element"),
             "smallest training set, base model: dropout in the last 1-2 layers minus after every layer "
             "(element-wise, mean over rates and K)", smallest_size_only=True),
    Contrast("dropout_before_bn_hurts", "Dropout feeding BatchNorm hurts (place it after the last BN)",
             dict(group="batch_norm", placement="last:1"), dict(group="batch_norm", placement="after_each_layer"),
             "batch_norm=True: dropout only after the last BN minus dropout before every BN (mean over rates)"),
    Contrast("spatial_for_conv_maps", "Spatial (channel) dropout suits conv feature maps",
             dict(group="main", placement=("after_last_pool", "after_each_layer", "last:2"), kind="spatial"),
             dict(group="main", placement=("after_last_pool", "after_each_layer", "last:2"), kind="element"),
             "base model, placements that touch conv maps: spatial minus element-wise dropout "
             "(mean over placements and rates)"),
)

EXPLORATORY = (
    Contrast("alp_vs_every_layer", "after_last_pool vs after_each_layer (base model)",
             dict(group="main", placement="after_last_pool", kind="element"),
             dict(group="main", placement="after_each_layer", kind="element"),
             "base model: after the last pool minus after every layer (element-wise)"),
    Contrast("every_layer_base", "after_each_layer vs after_last_pool on the *base* model (depth control)",
             dict(group="main", placement="after_each_layer", kind="element"),
             dict(group="main", placement="after_last_pool", kind="element"),
             "base model: after every layer minus after the last pool (compare with the deep model)"),
    Contrast("every_layer_deep_vs_none", "deep model: after_each_layer vs no dropout",
             dict(group="deep", placement="after_each_layer"), dict(group="deep", placement="none"),
             "deep model: after every layer minus no dropout"),
    Contrast("every_layer_small_vs_none", "smallest set: after_each_layer vs no dropout",
             dict(group="main", placement="after_each_layer", kind="element"), dict(group="main", placement="none"),
             "smallest training set: after every layer minus no dropout", smallest_size_only=True),
    Contrast("last_layers_vs_none_small", "smallest set: last 1-2 layers vs no dropout",
             dict(group="main", placement=("last:1", "last:2"), kind="element"), dict(group="main", placement="none"),
             "smallest training set: dropout in the last 1-2 layers minus no dropout", smallest_size_only=True),
    Contrast("bn_last_vs_bn_none", "batch_norm=True: dropout after the last BN vs no dropout",
             dict(group="batch_norm", placement="last:1"), dict(group="batch_norm", placement="none"),
             "batch_norm=True: dropout after the last BN minus no dropout"),
    Contrast("no_bn_last1_vs_every", "batch_norm=False control: last:1 vs after_each_layer",
             dict(group="main", placement="last:1", kind="element"),
             dict(group="main", placement="after_each_layer", kind="element"),
             "without BN: last layer only minus every layer (is the BN contrast specific to BN?)"),
)


def _matches(row, filters):
    for column, allowed in filters.items():
        allowed = allowed if isinstance(allowed, tuple) else (allowed,)
        if row[column] not in allowed:
            return False
    return True


def block_means(rows, filters, sizes=None):
    """Mean test accuracy of the matching rows per (size, seed) block.

    Returns
    -------
    dict
        ``(size, seed) -> mean accuracy``.
    """
    sums = {}
    for row in rows:
        if (sizes is None or row["size"] in sizes) and _matches(row, filters):
            total = sums.setdefault((row["size"], row["seed"]), [0.0, 0])
            total[0] += row["test_accuracy"]
            total[1] += 1
    return {key: s / n for key, (s, n) in sums.items()}


def paired_test(differences):
    """Mean, 95% t confidence interval, paired t-test and Wilcoxon p-values of paired differences.

    Parameters
    ----------
    differences : array-like of float

    Returns
    -------
    dict
        ``n``, ``mean``, ``ci_low``, ``ci_high``, ``p_t``, ``p_wilcoxon`` (NaN
        when undefined: fewer than 2 pairs, or all differences equal).

    Examples
    --------
    >>> r = paired_test([0.01, 0.02, 0.015, 0.012, 0.018])
    >>> r["n"], r["p_t"] < 0.01, r["ci_low"] > 0
    (5, True, True)
    """
    from scipy import stats

    d = np.asarray(differences, dtype=np.float64)
    out = dict(n=int(d.size), mean=float(d.mean()) if d.size else float("nan"), ci_low=float("nan"),
               ci_high=float("nan"), p_t=float("nan"), p_wilcoxon=float("nan"))
    if d.size < 2 or np.allclose(d, d[0], rtol=0, atol=1e-12):
        if d.size >= 2:   # identical differences: no variance, no test (but an exact zero is "no effect")
            out["ci_low"] = out["ci_high"] = out["mean"]
            out["p_t"] = out["p_wilcoxon"] = 1.0 if abs(out["mean"]) < 1e-12 else float("nan")
        return out
    t = stats.ttest_rel(d, np.zeros_like(d))
    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    out.update(p_t=float(t.pvalue), ci_low=float(out["mean"] - half), ci_high=float(out["mean"] + half))
    if np.any(d != 0):
        out["p_wilcoxon"] = float(stats.wilcoxon(d).pvalue)
    return out


def holm(pvalues):
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count as a test).

    Examples
    --------
    >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full_like(p, np.nan)
    order = valid[np.argsort(p[valid], kind="stable")]
    m, running = len(order), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def verdict(mean, p_adjusted, alpha=ALPHA):
    """``"holds"``, ``"does not hold"`` or ``"not significant"``."""
    if not np.isfinite(p_adjusted) or p_adjusted >= alpha:
        return NOT_SIGNIFICANT
    return HOLDS if mean > 0 else FAILS


def evaluate(rows, contrast, smallest):
    """Paired differences and tests for one contrast (``smallest``: the smallest size label)."""
    sizes = (smallest,) if contrast.smallest_size_only else None
    treated = block_means(rows, contrast.treatment, sizes)
    control = block_means(rows, contrast.control, sizes)
    blocks = sorted(set(treated) & set(control))
    result = paired_test([treated[b] - control[b] for b in blocks])
    result.update(key=contrast.key, title=contrast.title, description=contrast.description,
                  treatment_mean=float(np.mean([treated[b] for b in blocks])) if blocks else float("nan"),
                  control_mean=float(np.mean([control[b] for b in blocks])) if blocks else float("nan"),
                  blocks=len(blocks))
    return result


def breakdown(rows, contrast, smallest):
    """The contrast per dropout rate and per training-set size (uncorrected, descriptive).

    Returns
    -------
    dict
        ``{"rate": {rate: result}, "size": {size: result}}`` with
        :func:`paired_test` results. A control without dropout (``"none"``)
        is compared with the treatment at each rate.
    """
    from dataclasses import replace

    rates = sorted({r["rate"] for r in rows if _matches(r, contrast.treatment)})
    sizes = sorted({r["size"] for r in rows}, key=lambda s: min(r["n_train"] for r in rows if r["size"] == s))
    if contrast.smallest_size_only:
        sizes = [smallest]
    out = {"rate": {}, "size": {}}
    control_has_rate = contrast.control.get("placement") != "none"
    for rate in rates:
        control = dict(contrast.control, rate=rate) if control_has_rate else contrast.control
        out["rate"][rate] = evaluate(rows, replace(contrast, treatment=dict(contrast.treatment, rate=rate),
                                                   control=control), smallest)
    for size in sizes:
        out["size"][size] = evaluate(rows, replace(contrast, smallest_size_only=True), size)
    return out


def smallest_size(rows):
    """Label of the smallest training-set size among ``rows`` (by the number of training images)."""
    by_size = {}
    for row in rows:
        by_size[row["size"]] = row["n_train"]
    return min(by_size, key=by_size.get)


def analyse(rows, alpha=ALPHA):
    """Test every primary claim (Holm-corrected) and every exploratory contrast (uncorrected).

    Parameters
    ----------
    rows : list of dict
        Rows of ``runs.csv`` with typed values (see :func:`minicnn.tools.study.report.read_runs`).
    alpha : float, default=0.05

    Returns
    -------
    primary, exploratory : list of dict
        :func:`paired_test` results plus ``key``, ``title``, ``description``,
        ``treatment_mean``, ``control_mean``; primary results also carry
        ``p_holm``, ``verdict`` and ``breakdown`` (see :func:`breakdown`).
    """
    smallest = smallest_size(rows)
    primary = [evaluate(rows, c, smallest) for c in PRIMARY]
    for result, p_adj in zip(primary, holm([r["p_t"] for r in primary])):
        result["p_holm"] = p_adj
        result["verdict"] = verdict(result["mean"], p_adj, alpha)
    for result, contrast in zip(primary, PRIMARY):
        result["breakdown"] = breakdown(rows, contrast, smallest)
    exploratory = [evaluate(rows, c, smallest) for c in EXPLORATORY]
    return primary, exploratory
