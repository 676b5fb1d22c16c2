"""Charts of a run's numbers, drawn with matplotlib (the `plot` extra).

The library needs matplotlib only here, and imports it only when a chart is
drawn, so training and serving never load it.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence

# What the test-time-compute chart shows when not told, by task kind; the
# first names present in the rows are drawn.
LABEL_METRICS = ("conditional_accuracy", "frechet", "min_class_accuracy",
                 "parzen_ll")
IMAGE_METRICS = ("psnr", "ssim", "l1", "colour_error", "diversity")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("Charts need matplotlib: pip install -e '.[plot]' "
                          "(or pip install matplotlib).") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def default_metrics(rows: Sequence[dict]) -> List[str]:
    """The metrics of `rows` worth a panel: label-task ones if present,
    else image-task ones."""
    have = lambda name: all(f"{name}_refined" in r for r in rows)  # noqa: E731
    names = [m for m in LABEL_METRICS if have(m)]
    return names or [m for m in IMAGE_METRICS if have(m)]


def refinement_chart(rows: Sequence[dict], path: str,
                      metrics: Optional[Sequence[str]] = None,
                      title: str = "") -> str:
    """Quality against Langevin steps at inference, one panel per metric.

    Args:
      rows: The `versus_steps` of an evaluation (`--mode=eval
        --refine_steps=...`): dicts with `steps`, `seconds` and, per metric
        m, `m_fast` and `m_refined`.
      path: PNG to write (its folder is created).
      metrics: Metric names (without `_fast`/`_refined`); default
        `default_metrics(rows)`.
      title: Figure title.

    Returns:
      `path`.

    Raises:
      ValueError: No rows, or a metric the rows lack (named).
      ImportError: matplotlib is not installed (says how to get it).
    """
    if not rows:
        raise ValueError("No test-time compute rows: run --mode=eval with "
                         "--refine_steps=0,5,10,20,50,100 first.")
    rows = sorted(rows, key=lambda r: r["steps"])
    metrics = list(metrics) if metrics else default_metrics(rows)
    missing = [m for m in metrics
               if not all(f"{m}_refined" in r and f"{m}_fast" in r
                          for r in rows)]
    if missing or not metrics:
        raise ValueError(f"The rows have no metric {missing or metrics}; "
                         f"they hold {sorted(rows[0])}.")
    plt, fig, axes = _panels(len(metrics))
    steps = [r["steps"] for r in rows]
    for ax, name in zip(axes, metrics):
        ax.plot(steps, [r[f"{name}_refined"] for r in rows], marker="o",
                label="refined")
        # The fast answer does not depend on the steps: a flat reference.
        ax.plot(steps, [r[f"{name}_fast"] for r in rows], linestyle="--",
                label="fast")
        ax.set_xscale("symlog", linthresh=5)
        ax.set_xlabel("Langevin steps at inference", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
        # The rows' seconds time the judge's scores; the Parzen estimate
        # at each count is another cost, not timed.
        if all("seconds" in r for r in rows) and not name.startswith(
                "parzen"):
            # What each point cost, beside it (an axis of its own crowds
            # the small step counts).
            for r in rows:
                ax.annotate(f"{r['seconds']:.0f}s",
                            (r["steps"], r[f"{name}_refined"]),
                            textcoords="offset points", xytext=(3, 4),
                            fontsize=6, color="0.35")
    return _save(plt, fig, path, title)


def minutes_chart(curves: dict, path: str, title: str = "",
                  xlabel: str = "training minutes") -> str:
    """Quality against training minutes, per method: one panel per task
    and metric (what `cooperative_tf.reproduce` plots).

    Args:
      curves: `{panel title: {line label: [(minutes, value), ...]}}`, e.g.
        `{"mnist: conditional_accuracy": {"cgan": [(1.5, 0.4), ...]}}`.
      path: PNG to write (its folder is created).
      title: Figure title.
      xlabel: What the first number of each point is (e.g. `step`).

    Returns:
      `path`.

    Raises:
      ValueError: No curves.
      ImportError: matplotlib is not installed (says how to get it).
    """
    panels = [(name, lines) for name, lines in curves.items() if lines]
    if not panels:
        raise ValueError("No curves to draw: no run has evaluated yet.")
    plt, fig, axes = _panels(len(panels))
    for ax, (name, lines) in zip(axes, panels):
        for label, points in sorted(lines.items()):
            points = sorted(points)
            ax.plot([p[0] for p in points], [p[1] for p in points],
                    marker="o", markersize=3, label=label)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    return _save(plt, fig, path, title)


def _panels(count: int):
    """pyplot, a figure and its first `count` axes, three to a row (the
    rest of the last row hidden)."""
    plt = _pyplot()
    cols = min(count, 3)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows),
                             squeeze=False)
    for ax in axes.ravel()[count:]:
        ax.axis("off")
    return plt, fig, list(axes.ravel()[:count])


def _save(plt, fig, path: str, title: str) -> str:
    """Writes `fig` to `path` (creating its folder) and closes it."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
