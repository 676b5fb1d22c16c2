r"""Plots a run's quality and training curves as one PNG.

Reads `<workdir>/quality.jsonl` (the periodic evaluations) and
`<workdir>/history.jsonl` (the progress lines) of one or more runs and draws
each named metric against the training step, one panel per metric, one line
per run. Needs matplotlib (`pip install -e '.[plot]'`).

    python tools/plot_quality.py --workdir=runs/mnist --out=docs/mnist_curves.png \
        --metrics=conditional_accuracy_fast,conditional_accuracy_refined,frechet_fast,planner_accuracy

With `--versus`, it draws instead the planner's test-time compute curve of
an evaluation made with `--mode=eval --refine_steps=...` (its eval.json):
each metric of the refined answer against the number of Langevin steps at
inference, the fast answer as a dashed line, the seconds each took beside
each point (`cooperative_tf.plots.refinement_chart`).

    python tools/plot_quality.py --versus --workdir=runs/mnist --out=x.png \
        --metrics=conditional_accuracy,frechet
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from cooperative_tf.workdir import HISTORY_FILE, QUALITY_FILE, read_jsonl  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", action="append", required=True,
                        help="A run's work directory (repeat for several).")
    parser.add_argument("--label", action="append",
                        help="Legend names, one per --workdir.")
    parser.add_argument("--metrics", required=True,
                        help="Comma-separated metric names from "
                             "quality.jsonl or history.jsonl.")
    parser.add_argument("--out", required=True, help="PNG to write.")
    parser.add_argument("--title", default="")
    parser.add_argument("--versus", action="store_true",
                        help="Plot eval.json's versus_steps instead.")
    args = parser.parse_args(argv)
    names = [m for m in args.metrics.split(",") if m]
    if args.versus:
        return _versus(args, names)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = args.label or [os.path.basename(os.path.normpath(w))
                            for w in args.workdir]
    if len(labels) != len(args.workdir):
        parser.error("give one --label per --workdir")
    cols = min(len(names), 3)
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows),
                             squeeze=False)
    found = False
    for ax, name in zip(axes.ravel(), names):
        for workdir, label in zip(args.workdir, labels):
            for source in (QUALITY_FILE, HISTORY_FILE):
                rows_ = [r for r in read_jsonl(workdir, source) if name in r]
                if rows_:
                    ax.plot([r["step"] for r in rows_],
                            [r[name] for r in rows_], marker=".",
                            label=label)
                    found = True
                    break
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("training step", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        if len(args.workdir) > 1:
            ax.legend(fontsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    if not found:
        parser.error(f"none of {names} is in the runs' {QUALITY_FILE} or "
                     f"{HISTORY_FILE}")
    if args.title:
        fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"Wrote {args.out}")


def _versus(args, names):
    import json

    from cooperative_tf import plots
    with open(os.path.join(args.workdir[0], "eval.json")) as f:
        rows = json.load(f).get("versus_steps")
    print(f"Wrote {plots.refinement_chart(rows, args.out, names, args.title)}")


if __name__ == "__main__":
    main()
