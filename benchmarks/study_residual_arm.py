"""A small run of the study's residual deep arm: "in a deep net, dropout after every layer" on digits.

Trains only the ``resdeep`` model of the built-in digits plan (its three arms, rates 0.1, 0.25 and 0.5, the
profile's epochs and early stopping) at one training-set size for a few seeds, then prints the claim's paired
verdict. Fewer than 10 seeds: a small run, not the study's evidence (``minicnn study`` runs the whole grid).

Usage: ``python benchmarks/study_residual_arm.py [--size 300] [--seeds 5] [--out study_resdeep]``
"""

import argparse
from dataclasses import replace
from pathlib import Path


def main(argv=None):
    from minicnn.tools.study import make_plan, report, stats
    from minicnn.tools.study.runner import run_plan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="study_resdeep")
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args(argv)

    plan = make_plan("digits", sizes=(args.size,), seeds=args.seeds)
    plan = replace(plan, configs=[c for c in plan.configs if c.group == "resdeep"], shared={})
    plan.__post_init__()
    Path(args.out).mkdir(exist_ok=True)
    rows = [report.typed(r) for r in run_plan(plan, Path(args.out) / "runs.csv", n_jobs=args.n_jobs, verbose=0)]
    for row in sorted(rows, key=lambda r: (r["placement"], r["rate"], r["seed"])):
        print(f"{row['placement']:17s} {row['rate']:5.2f} seed {row['seed']}  val {row['val_accuracy']:.4f}  "
              f"test {row['test_accuracy']:.4f}  epochs {row['epochs']}")
    claim = next(c for c in stats.CLAIMS if c.group == "resdeep")
    for result in stats.analyse(rows):
        if result["key"] == claim.key:
            print(f"{claim.title}: {result['data']} size {result['size']}, {result['n']} pairs, mean difference "
                  f"{100 * result['mean']:+.2f} pp [{100 * result['ci_low']:+.2f}, {100 * result['ci_high']:+.2f}], "
                  f"p_t {result['p_t']:.3g} -> {result['verdict']} (a small run: {args.seeds} seeds)")


if __name__ == "__main__":
    main()
