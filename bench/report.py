"""The benchmark's report: headline numbers, fastest variants, the table.

Pure functions of the results dict `bench.runner.run` builds, so a
saved JSON can be re-read and re-printed (`format_table(json.load(f))`).
"""

from __future__ import annotations

from typing import List, Optional

from bench.workloads import Variant

# The rows of the `mnist` section's `label_stage`, in order: the paper's
# loss first, each other row's step is given over it in the headline.
STAGE_ROWS = ("paper loss", "label term", "gradient penalty",
              "long run negatives")

# The library's path where nothing is timed (`execution.by_rule`): whole-step
# XLA, unrolled Langevin. A run's default (`auto`) is marked in each block.
DEFAULT = Variant("xla", True)


def _peak(results: dict) -> Optional[float]:
    return results.get("peak", {}).get("float32", {}).get("gflops_per_s")


def _best(rows: List[dict], part: str) -> Optional[dict]:
    timed = [r for r in rows if "median_s" in r.get(part, {})]
    return min(timed, key=lambda r: r[part]["median_s"]) if timed else None


def _find(rows: List[dict], variant: str) -> Optional[dict]:
    return next((r for r in rows if r.get("variant") == variant), None)


def _failed(results: dict) -> dict:
    """Sections that raised: `{name: error}`."""
    return {name: v["error"] for name, v in results.items()
            if isinstance(v, dict) and set(v) == {"error"}}


def _ok(results: dict) -> dict:
    """`results` without the sections that raised."""
    failed = _failed(results)
    return {k: v for k, v in results.items() if k not in failed}


def _blocks(results: dict) -> dict:
    """The variant blocks by workload name: mnist and zappos@size."""
    results = _ok(results)
    blocks = {}
    if "mnist" in results:
        blocks["mnist"] = results["mnist"]
    for size, block in results.get("image", {}).items():
        blocks[f"zappos@{size}"] = block
    return blocks


def fastest_variants(results: dict) -> dict:
    """Per workload and part, the fastest variant and its speed-up over the
    slowest."""
    out = {}
    for name, block in _blocks(results).items():
        rows = [r for r in block["variants"] if "error" not in r]
        for part in ("step", "solver", "fast", "refined"):
            best = _best(rows, part)
            if best is None:
                continue
            timed = [r[part]["median_s"] for r in rows
                     if "median_s" in r.get(part, {})]
            out[f"{name}/{part}"] = {
                "variant": best["variant"],
                "median_s": best[part]["median_s"],
                "slowest_over_fastest": max(timed) / best[part]["median_s"]}
    return out


def headline(results: dict) -> dict:
    """The numbers to hold against a machine's targets, from whatever
    sections ran (the targets of the 2-core reference machine are in
    docs/benchmark.md, "Against the targets"; they are not judged here).

    The interleaved head-to-head of the `authors` section (ours, the
    authors' code and the matmul peak timed in turn, round by round) is
    preferred: it holds on a shared machine. Without it, the `mnist` and
    `peak` sections' separate timings are used.
    """
    results = _ok(results)
    out = {}
    versus = results.get("authors", {})
    rows = results.get("mnist", {}).get("variants", [])
    default = _find(rows, results.get("mnist", {}).get("auto", {}).get(
        "variant", DEFAULT.name))
    if "ours" in versus:
        ours, source = versus["ours"], "authors (interleaved)"
    elif default and "median_s" in default.get("step", {}):
        ours, source = default, "mnist"
    else:
        return out
    step_s = ours["step"]["median_s"]
    out["ours_mnist_step_s"] = {"value": step_s, "variant": ours["variant"],
                                "source": source}
    for name, key in (("step", "step_pct_peak"),
                      ("solver", "langevin_pct_peak")):
        pct = ours.get(name, {}).get("pct_of_matmul_peak")
        if pct is not None:
            out[key] = {"value": pct, "source": source}
    for row in versus.get("rows", []):
        loop = row["variant"].split("/")[1]
        out[f"authors@{row['image_size']}/{loop}_over_ours"] = {
            "value": row["over_ours"], "authors_s": row["step"]["median_s"]}
        if row["image_size"] == 28 and loop == "while_loop":
            out["authors_step_s"] = {"value": row["step"]["median_s"]}
    best = _best(rows, "step")
    if best and best is not default:
        out["fastest_mnist_step"] = {"variant": best["variant"],
                                     "value": best["step"]["median_s"]}
    for name, block in _blocks(results).items():
        auto = block.get("auto", {})
        if "over_fastest" in auto:
            out[f"auto_over_fastest@{name}"] = {
                "value": auto["over_fastest"], "variant": auto["variant"],
                "fastest": auto["fastest"]}
    stage = {r.get("stage"): r.get("step", {}).get("median_s")
             for r in results.get("mnist", {}).get("label_stage", [])}
    paper, *others = STAGE_ROWS
    for name in others:
        if stage.get(name) and stage.get(paper):
            key = f"{name.replace(' ', '_')}_step_over_paper_step"
            out[key] = {"value": stage[name] / stage[paper]}
    return out


# ---------------------------------------------------------------- printing
def _fmt(timing: dict, key: str = "median_s", spec: str = ".3f") -> str:
    if not isinstance(timing, dict) or key not in timing:
        return "error" if isinstance(timing, dict) and "error" in timing \
            else "-"
    return format(timing[key], spec)


def print_row(label: str, row: dict):
    if "error" in row:
        print(f"  {label:16s} {row['variant']:28s} ERROR {row['error']}",
              flush=True)
        return
    step = row.get("step", {})
    rate = step.get("pct_of_matmul_peak")
    extra = f" {rate:5.1f}%pk" if rate is not None else ""
    parts = " ".join(f"{p}={_fmt(row.get(p, {}))}"
                     for p in ("step", "solver", "fast", "refined")
                     if p in row)
    comp = f" (1st {step['first_s']:.1f}s)" if "first_s" in step else ""
    print(f"  {label:16s} {row['variant']:28s} b={row.get('batch', '')!s:4s}"
          f" {parts}{extra}{comp}", flush=True)


def format_table(results: dict) -> str:
    """The results as a Markdown table (also what docs/benchmark.md shows)."""
    lines = [f"section {name} failed: {error[:300]}"
             for name, error in _failed(results).items()]
    results = _ok(results)
    machine = results.get("meta", {}).get("machine")
    if machine:
        lines += [f"machine: {machine['cpu']}, {results['meta']['cpus']} "
                  f"cores, flags {' '.join(machine['cpu_flags']) or '-'}"
                  + (f", GPUs {', '.join(machine['gpus'])}"
                     if machine["gpus"] else "")
                  + f"; TensorFlow {machine['tensorflow']}, Keras "
                  f"{machine['keras']}", ""]
    peak = _peak(results)
    if peak:
        bf16 = results["peak"]["bfloat16"]["gflops_per_s"]
        lines.append(f"matmul peak ({results['peak']['float32']['size']}^2):"
                     f" float32 {peak:.1f} GFLOP/s, bfloat16 {bf16:.1f} "
                     "GFLOP/s")
        lines.append("")
    header = ("| workload | variant | batch | step s | img/s | GFLOP/s "
              "(% peak) | solver s (% peak) | fast s | refined s | "
              "1st call s | peak RSS MB | other load |")
    lines += [header, "|" + "---|" * 12]
    first_row = len(lines)

    def pct(t):
        if "gflops_per_s" not in t:
            return ""
        p = t.get("pct_of_matmul_peak")
        return f"{t['gflops_per_s']:.1f}" + (f" ({p:.0f}%)" if p else "")

    def add(name, row):
        if "error" in row or "error" in row.get("step", {}):
            err = row.get("error") or row["step"]["error"]
            lines.append(f"| {name} | {row['variant']} | "
                         f"{row.get('batch', '')} | error: "
                         f"{err[:120]} ||||||||")
            return
        step, solver = row.get("step", {}), row.get("solver", {})
        variant = row["variant"] + (" **(auto)**" if row.get("auto") else "")
        solver_txt = _fmt(solver) + (
            f" ({solver['pct_of_matmul_peak']:.0f}%)"
            if "pct_of_matmul_peak" in solver else "")
        lines.append(
            f"| {name} | {variant} | {row.get('batch', '')} | "
            f"{_fmt(step)} | {step.get('images_per_s', 0):.1f} | {pct(step)}"
            f" | {solver_txt} | {_fmt(row.get('fast', {}))} | "
            f"{_fmt(row.get('refined', {}))} | {_fmt(step, 'first_s')} | "
            f"{_fmt(step, 'peak_rss_mb', '.0f')} | {load(step)} |")

    def load(timing):
        cores = timing.get("other_load_cores", timing.get("_load"))
        return "" if cores is None else f"{cores:.2f}"

    if "mnist" in results:
        for row in results["mnist"]["variants"]:
            add("mnist@32", row)
    for row in results.get("mnist", {}).get("label_stage", []):
        add(f"mnist@32 {row['stage']}", row)
    for row in results.get("batch", {}).get("rows", []):
        add("mnist@32", row)
    versus = results.get("authors", {})
    if "ours" in versus:
        ours = dict(versus["ours"])
        ours["step"] = dict(ours["step"], images_per_s=ours["batch"]
                            / ours["step"]["median_s"],
                            _load=versus.get("other_load_cores"))
        add("mnist@32 interleaved", ours)
    for row in versus.get("rows", []):
        row = dict(row, step=dict(row["step"],
                                  _load=versus.get("other_load_cores")))
        add(f"authors TF1 @{row['image_size']} interleaved", row)
    for size, block in results.get("image", {}).items():
        for row in block["variants"]:
            add(f"zappos@{size}", row)
    for row in results.get("precision", {}).get("trainer", []):
        add("mnist@32", row)
    if len(lines) == first_row:  # no timed rows: drop the header
        del lines[first_row - 2:]
    flops = []
    if results.get("mnist", {}).get("flops_g"):
        flops.append(("mnist@32", results["mnist"]["flops_g"]))
    for size, block in results.get("image", {}).items():
        if block.get("flops_g"):
            flops.append((f"zappos@{size}", block["flops_g"]))
    for row in versus.get("rows", []):
        flops.append((f"authors TF1 @{row['image_size']} "
                      f"{row['variant'].split('/')[1]}", row["flops_g"]))
    if flops:
        lines += ["", "| GFLOP per call | step | Langevin | planner update |"
                  " policy update | fast |", "|---|---|---|---|---|---|"]
        for name, f in flops:
            rest = " | ".join(f"{f[k]:.2f}" if k in f else "-" for k in (
                "planner_update", "policy_update", "fast"))
            lines.append(f"| {name} | {f['step']:.2f} | {f['langevin']:.2f} |"
                         f" {rest} |")
    if results.get("headline"):
        lines += ["", "| headline (targets: docs/benchmark.md) | value |",
                  "|---|---|"]
        for name, t in results["headline"].items():
            value = t["value"]
            value = f"{value:.3f}" if isinstance(value, float) else value
            lines.append(f"| {name} | {value} |")
    if results.get("fastest"):
        lines += ["", "| workload | fastest variant | s | slowest/fastest |",
                  "|---|---|---|---|"]
        for name, f in results["fastest"].items():
            lines.append(f"| {name} | {f['variant']} | {f['median_s']:.3f} | "
                         f"{f['slowest_over_fastest']:.2f}x |")
    return "\n".join(lines)
