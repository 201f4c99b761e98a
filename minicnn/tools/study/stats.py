"""The claims as contrasts between arms, with rates chosen on validation data, tested per data set and size.

Nested selection: in every block (data set, training-set size, seed) each arm
is represented by its configuration with the best *validation* accuracy
(:func:`select`; ties go to the smaller rate). Only then are the chosen runs'
*test* accuracies compared: one paired difference ``treatment - control`` per
seed, so a placement is never judged at a rate it would not have been given.
Each (claim, data set, size) is one test: a two-sided paired t-test
(``scipy.stats.ttest_rel``), Holm's correction over every primary test of the
study, the mean difference with its 95% t confidence interval and Cohen's d_z
as effect sizes, and the Wilcoxon signed-rank p (``scipy.stats.wilcoxon``) as
a distribution-free check. A claim *holds* when the difference is positive and
significant after correction, *does not hold* when significant the other way,
and is *not significant* otherwise.

Srivastava et al.'s claim compares two sizes (different images per seed, so
not paired): the gain of dropout (best dropout arm minus no dropout, chosen on
validation) at the largest size minus the gain at the smallest, with Welch's
t-test (``scipy.stats.ttest_ind(equal_var=False)``).
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from .grid import ANY_DROPOUT, ARMS

ALPHA = 0.05
HOLDS, FAILS, NOT_SIGNIFICANT = "holds", "does not hold", "not significant"
NOT_APPLICABLE = "not applicable"   # the two arms build the same networks on this model: nothing to compare
NOT_TESTABLE = "not testable"   # fewer than 2 pairs, or every paired difference equal: no variance, p undefined


@dataclass(frozen=True)
class Claim:
    """A claim as ``treatment`` arm minus ``control`` arm of one model group.

    Attributes
    ----------
    key : str
    title : str
        The claim in its source's words.
    source : str
    group : str
        Model group ("base", "deep", "resdeep", "bn", "keras").
    treatment, control : str
        Arm names (:data:`minicnn.tools.study.grid.ARMS`, or ``ANY_DROPOUT``).
    smallest_only : bool
        Test at the smallest size of the data set only (claims about small data).
    across_sizes : bool
        Srivastava et al.'s form: gain at the largest size minus gain at the smallest (Welch).
    """

    key: str
    title: str
    source: str
    group: str
    treatment: str
    control: str
    smallest_only: bool = False
    across_sizes: bool = False


CLAIMS = (
    Claim("after_last_pool", "Dropout after the last pooling layer helps", "blog post", "base",
          "after_last_pool", "none"),
    Claim("large_model_premise", "A large model (the Keras MNIST CNN, 1.2M weights) gains from dropout after "
          "the last pool", "blog post (premise)", "keras", "after_last_pool", "none"),
    Claim("every_layer_deep", "In a deep net, dropout after every layer beats after the last pool only",
          "blog post", "deep", "after_each_layer", "after_last_pool"),
    Claim("every_layer_deep_residual", "In a deep net, dropout after every layer beats after the last pool only "
          "(residual blocks with batch norm: a deep net that trains)", "blog post", "resdeep", "after_each_layer",
          "after_last_pool"),
    Claim("last_layers_small_data", "On small data, dropout only in the last layers beats every layer",
          "blog post", "base", "last_layers", "after_each_layer", smallest_only=True),
    Claim("no_dropout_before_bn", "No dropout before BatchNorm: after the last layer only beats before every BN",
          "Li et al. 2019", "bn", "last:1", "after_each_layer"),
    Claim("spatial_conv_maps", "Spatial (channel) dropout beats element dropout on conv maps",
          "Tompson et al. 2015", "base", "conv_maps_spatial", "conv_maps_element"),
    Claim("spatial_large_maps", "Spatial dropout beats element dropout after the last pool of the large model",
          "Tompson et al. 2015", "keras", "after_last_pool_spatial", "after_last_pool"),
    Claim("small_sets_little_gain", "Dropout gains less on the smallest training set than on the largest",
          "Srivastava et al. 2014", "base", ANY_DROPOUT, "none", across_sizes=True),
)


def _arm_members(rows, group, arm):
    """Rows of ``group`` that belong to ``arm``."""
    if arm == ANY_DROPOUT:
        return [r for r in rows if r["group"] == group and r["placement"] != "none"]
    placements, kind = ARMS[arm]
    return [r for r in rows if r["group"] == group and r["placement"] in placements
            and (kind == "-" or r["kind"] == kind)]


def select(rows, group, arm):
    """The arm's configuration chosen on validation accuracy in every block.

    Only ``val_accuracy`` decides (ties: smaller rate, then placement name); ``test_accuracy`` is never read.

    Returns
    -------
    dict
        ``(data, size, seed) -> row``.
    """
    chosen = {}
    for row in _arm_members(rows, group, arm):
        key = (row["data"], row["size"], row["seed"])
        best = chosen.get(key)
        rank = (-row["val_accuracy"], row["rate"], row["placement"], row["kind"])
        if best is None or rank < (-best["val_accuracy"], best["rate"], best["placement"], best["kind"]):
            chosen[key] = row
    return chosen


def paired_test(differences):
    """Mean, 95% t confidence interval, Cohen's d_z, paired t-test and Wilcoxon p-values of paired differences.

    Parameters
    ----------
    differences : array-like of float

    Returns
    -------
    dict
        ``n``, ``mean``, ``ci_low``, ``ci_high``, ``d_z`` (mean / std), ``p_t``, ``p_wilcoxon`` (NaN when
        undefined: fewer than 2 pairs, or all differences equal).

    Examples
    --------
    >>> r = paired_test([0.01, 0.02, 0.015, 0.012, 0.018])
    >>> r["n"], r["p_t"] < 0.01, r["ci_low"] > 0
    (5, True, True)
    """
    from scipy import stats

    d = np.asarray(differences, dtype=np.float64)
    nan = float("nan")
    out = dict(n=int(d.size), mean=float(d.mean()) if d.size else nan, ci_low=nan, ci_high=nan, d_z=nan,
               p_t=nan, p_wilcoxon=nan)
    if d.size < 2 or np.allclose(d, d[0], rtol=0, atol=1e-12):
        # identical differences: no variance, so no interval and no test (p undefined), never an exact effect;
        # only all-zero differences (the arms scored the same on every seed) read as "no difference", p = 1
        if d.size >= 2 and abs(out["mean"]) < 1e-12:
            out["ci_low"] = out["ci_high"] = 0.0
            out["p_t"] = out["p_wilcoxon"] = 1.0
        return out
    t = stats.ttest_rel(d, np.zeros_like(d))
    ci = t.confidence_interval(0.95)
    out.update(p_t=float(t.pvalue), ci_low=float(ci.low), ci_high=float(ci.high),
               d_z=float(d.mean() / d.std(ddof=1)))
    if np.any(d != 0):
        out["p_wilcoxon"] = float(stats.wilcoxon(d).pvalue)
    return out


def welch_test(a, b):
    """Mean of ``a`` minus mean of ``b``, Welch's t-test and its 95% confidence interval (unpaired samples)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    nan = float("nan")
    out = dict(n=int(min(a.size, b.size)), mean=float(a.mean() - b.mean()) if a.size and b.size else nan,
               ci_low=nan, ci_high=nan, d_z=nan, p_t=nan, p_wilcoxon=nan)
    if a.size < 2 or b.size < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return out
    t = stats.ttest_ind(a, b, equal_var=False)
    ci = t.confidence_interval(0.95)
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    out.update(p_t=float(t.pvalue), ci_low=float(ci.low), ci_high=float(ci.high),
               d_z=float(out["mean"] / pooled) if pooled > 0 else nan)
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


def size_order(rows):
    """Size labels per data set, smallest first (by the number of training images)."""
    sizes = {}
    for row in rows:
        sizes.setdefault(row["data"], {})[row["size"]] = row["n_train"]
    return {data: sorted(by_size, key=by_size.get) for data, by_size in sizes.items()}


def _chosen_summary(rows):
    """Which configurations the validation split chose, e.g. ``{"after_last_pool 0.25": 7, ...}``."""
    from .grid import rate_text

    counts = {}
    for row in rows:
        name = "none" if row["placement"] == "none" else f"{row['placement']} {row['kind']} {rate_text(row['rate'])}"
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _networks(rows, group, arm, data, size):
    """The distinct networks trained for ``arm`` in one (data set, size): a copied row counts as its source."""
    from .grid import rate_text

    out = set()
    for row in _arm_members(rows, group, arm):
        if row["data"] == data and row["size"] == size:
            own = (f"{row['group']}/none" if row["placement"] == "none"
                   else f"{row['group']}/{row['placement']}/{row['kind']}/{rate_text(row['rate'])}")
            out.add(row.get("same_as") or own)
    return out


def evaluate(rows, claim, data, size):
    """One claim on one data set and size (paired over seeds); None when the study has no such runs.

    When both arms consist of the same networks (e.g. spatial and element dropout on a model without conv maps,
    whose rows share one run through ``same_as``), the result has ``same_network=True``, no p-value, and its
    verdict is "not applicable".
    """
    treated, control = select(rows, claim.group, claim.treatment), select(rows, claim.group, claim.control)
    seeds = sorted(k[2] for k in set(treated) & set(control) if k[:2] == (data, size))
    if not seeds:
        return None
    if _networks(rows, claim.group, claim.treatment, data, size) == \
            _networks(rows, claim.group, claim.control, data, size):
        nan = float("nan")
        mean = float(np.mean([treated[(data, size, s)]["test_accuracy"] for s in seeds]))
        return dict(n=len(seeds), mean=nan, ci_low=nan, ci_high=nan, d_z=nan, p_t=nan, p_wilcoxon=nan,
                    treatment_mean=mean, control_mean=mean, same_network=True,
                    chosen_treatment=_chosen_summary([treated[(data, size, s)] for s in seeds]),
                    chosen_control=_chosen_summary([control[(data, size, s)] for s in seeds]),
                    not_trained=sum(treated[(data, size, s)]["did_not_train"] for s in seeds))
    t_rows = [treated[(data, size, s)] for s in seeds]
    c_rows = [control[(data, size, s)] for s in seeds]
    result = paired_test([t["test_accuracy"] - c["test_accuracy"] for t, c in zip(t_rows, c_rows)])
    result.update(treatment_mean=float(np.mean([t["test_accuracy"] for t in t_rows])),
                  control_mean=float(np.mean([c["test_accuracy"] for c in c_rows])),
                  chosen_treatment=_chosen_summary(t_rows), chosen_control=_chosen_summary(c_rows),
                  not_trained=sum(r["did_not_train"] for r in t_rows + c_rows))
    return result


def evaluate_across_sizes(rows, claim, data, small, large):
    """Srivastava et al.'s form: gain of dropout at ``large`` minus gain at ``small`` (Welch)."""
    treated, control = select(rows, claim.group, claim.treatment), select(rows, claim.group, claim.control)

    def gains(size):
        keys = sorted(k for k in set(treated) & set(control) if k[:2] == (data, size))
        return [treated[k]["test_accuracy"] - control[k]["test_accuracy"] for k in keys], [treated[k] for k in keys]

    (g_large, t_large), (g_small, t_small) = gains(large), gains(small)
    if not g_large or not g_small:
        return None
    result = welch_test(g_large, g_small)
    result.update(treatment_mean=float(np.mean(g_large)), control_mean=float(np.mean(g_small)),
                  chosen_treatment=_chosen_summary(t_large + t_small), chosen_control={"none": len(g_large)},
                  not_trained=sum(r["did_not_train"] for r in t_large + t_small))
    return result


def analyse(rows, alpha=ALPHA):
    """Test every claim on every data set and size; Holm's correction over all of these tests.

    On the user's data (model group "user") the base-model claims are tested on the user's model.

    Parameters
    ----------
    rows : list of dict
        Typed rows (see :func:`minicnn.tools.study.report.read_runs`).
    alpha : float, default=0.05

    Returns
    -------
    list of dict
        One result per (claim, data set, size) that the rows cover (verdict "not applicable", outside Holm's
        correction, when both arms build the same networks): :func:`paired_test` fields plus ``key``,
        ``title``, ``source``, ``data``, ``size``, ``treatment_mean``, ``control_mean``, ``chosen_treatment``,
        ``chosen_control``, ``not_trained``, ``p_holm`` and ``verdict``.
    """
    results = []
    for data, sizes in size_order(rows).items():
        groups = {r["group"] for r in rows if r["data"] == data}
        for claim in CLAIMS:
            if claim.group not in groups and claim.group == "base" and "user" in groups:
                claim = replace(claim, group="user")   # the user's own model stands in for the base model
            if claim.across_sizes:
                cells = [(f"{sizes[0]} vs {sizes[-1]}", evaluate_across_sizes(rows, claim, data, sizes[0],
                                                                               sizes[-1]))] if len(sizes) > 1 else []
            else:
                cells = [(s, evaluate(rows, claim, data, s)) for s in (sizes[:1] if claim.smallest_only else sizes)]
            for size, result in cells:
                if result is not None:
                    result.update(key=claim.key, title=claim.title, source=claim.source, data=data, size=size,
                                  treatment=claim.treatment, control=claim.control, group=claim.group)
                    results.append(result)
    for result, p_adj in zip(results, holm([r["p_t"] for r in results])):
        result["p_holm"] = p_adj
        if result.get("same_network"):
            result["verdict"] = NOT_APPLICABLE
        elif not np.isfinite(result["p_t"]):
            result["verdict"] = NOT_TESTABLE
        else:
            result["verdict"] = verdict(result["mean"], p_adj, alpha)
    return results


def recommend(rows, data, group):
    """The configuration to use on ``data``: best mean validation accuracy at the largest size.

    The choice reads only validation accuracies; its test accuracy (mean and 95% t interval over seeds) and
    its paired difference from no dropout are reported afterwards.

    Returns
    -------
    dict or None
        ``placement``, ``kind``, ``rate``, ``size``, ``val_mean``, ``test_mean``, ``test_ci``, ``vs_none``
        (:func:`paired_test` of chosen minus none), ``n_seeds``, ``best_test`` (the configuration with the best
        mean test accuracy at that size: ``placement``, ``kind``, ``rate``, ``mean``).
    """
    from scipy import stats

    sizes = size_order(rows).get(data)
    if not sizes:
        return None
    size = sizes[-1]
    cells = {}
    for row in rows:
        if row["data"] == data and row["group"] == group and row["size"] == size:
            cells.setdefault((row["placement"], row["kind"], row["rate"]), []).append(row)
    if not cells:
        return None
    best = max(cells, key=lambda k: (np.mean([r["val_accuracy"] for r in cells[k]]), -k[2]))
    runs = sorted(cells[best], key=lambda r: r["seed"])
    test = np.array([r["test_accuracy"] for r in runs])
    if len(test) > 1 and np.ptp(test) > 0:
        low, high = stats.t.interval(0.95, len(test) - 1, loc=test.mean(), scale=stats.sem(test))
    else:
        low = high = float(test.mean())
    top = max(cells, key=lambda k: np.mean([r["test_accuracy"] for r in cells[k]]))
    best_test = dict(placement=top[0], kind=top[1], rate=top[2],
                     mean=float(np.mean([r["test_accuracy"] for r in cells[top]])))
    none = {r["seed"]: r["test_accuracy"] for r in cells.get(("none", "-", 0.0), [])}
    vs_none = paired_test([r["test_accuracy"] - none[r["seed"]] for r in runs if r["seed"] in none])
    return dict(placement=best[0], kind=best[1], rate=best[2], size=size, group=group,
                val_mean=float(np.mean([r["val_accuracy"] for r in runs])), test_mean=float(test.mean()),
                test_ci=(float(low), float(high)), vs_none=vs_none, n_seeds=len(runs), best_test=best_test)
