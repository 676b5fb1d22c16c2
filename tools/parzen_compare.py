"""Parzen differences between runs, paired over the scored digits.

  python -m tools.parzen_compare --workdirs=runs/a,runs/b \
      --data_dir=../shared/data/mnist --samples=4500 --policy_weights=trained
  python -m tools.parzen_compare --workdirs=runs/a@trained,runs/a@averaged \
      --data_dir=../shared/data/mnist --samples=4500

Scores each run's answers as `--mode=eval` does (`eval_lib.parzen_frame`
and `parzen_answers`: the same held-out halves, sigma chosen on one), keeps
every scored digit's log-likelihood, and prints one JSON line per run
(its scores, and its gap to the real training digits, paired) and one per
pair of runs and answer kind: the first run minus the second, with the
standard error paired over the scored digits (`parzen.paired_difference`).
Two runs of one label task score the same digits, so the spread between
easy and hard digits, most of each score's own error, cancels. The error
counts the digits' draw only: a second seed of the same settings moves a
score by more, so compare settings over several seeds. An entry
`<workdir>@trained` or `<workdir>@averaged` scores that run with those
weights in place of `--policy_weights` (the planner's following the
policy's, as in `--mode=eval`), so that a run's weight averages can be
paired against its trained weights.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from typing import Optional, Tuple

from tools import flags


def split_entry(entry: str) -> Tuple[str, Optional[str]]:
    """`(workdir, policy_weights)` of one `--workdirs` entry.

    Args:
      entry: `runs/a`, or `runs/a@trained` / `runs/a@averaged`.

    Returns:
      The work directory and the weights the entry names, `None` where it
      names none (a directory whose own name holds an `@` names none).

    Raises:
      ValueError: A suffix that names no policy weights.
    """
    workdir, at, weights = entry.rpartition("@")
    if not at or os.path.isdir(entry):
        return entry, None
    if weights not in flags.POLICY_WEIGHTS:
        raise ValueError(
            f"{entry!r} ends in @{weights}, which names no policy weights; "
            f"use one of {', '.join(flags.POLICY_WEIGHTS)} after the @.")
    return workdir, weights


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdirs", required=True,
                        help="Comma-separated work directories of runs of "
                        "one label task (at least 2), each optionally "
                        "followed by @trained or @averaged.")
    parser.add_argument("--data_dir", default=None,
                        help="The task's data (default: each run's own).")
    parser.add_argument("--samples", type=int, default=4500,
                        help="Answers in each window, as --mode=eval's "
                        "--parzen_samples.")
    flags.add_policy_weights(parser)
    args = parser.parse_args(argv)
    entries = [w for w in args.workdirs.split(",") if w]
    if len(entries) < 2:
        parser.error(f"--workdirs needs at least 2 runs. Received: "
                     f"{args.workdirs!r}")
    if args.samples < 2:
        parser.error(f"--samples must be at least 2. Received: "
                     f"{args.samples}")

    import numpy as np

    from cooperative_tf import averaging, eval_lib, factory, parzen
    from cooperative_tf import workdir as workdir_lib

    try:
        runs = [split_entry(e) for e in entries]
        configs = [eval_lib.label_run_config(w, args.data_dir)
                   for w, _ in runs]
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    for entry, (_, named), config in zip(entries, runs, configs):
        # Asked for by name, the average must exist: otherwise the trained
        # weights would answer under its name.
        t = config.train
        if named == averaging.AVERAGED and not (t.policy_ema
                                                or t.planner_ema):
            raise SystemExit(
                f"error: {entry} asks for the weight averages, but that run "
                "kept none (train.policy_ema=0, train.planner_ema=0); name "
                "its trained weights, @trained.")
    runs = [(w, named or args.policy_weights) for w, named in runs]
    scores, test = {}, None
    for entry, (workdir, weights), config in zip(entries, runs, configs):
        frame = eval_lib.parzen_frame(config, eval_lib.eval_dataset(config),
                                      args.samples)
        if test is None:
            test = frame.test
            real = parzen.evaluate(frame.train_real, frame.validation,
                                   frame.test)["test_ll"]
        elif frame.test.shape != test.shape or not np.array_equal(
                frame.test, test):
            raise SystemExit(
                f"error: {workdir} scores other digits than {runs[0][0]} "
                "(another task or data directory); pass one --data_dir "
                "for runs of one task.")
        trainer = factory.build_trainer(config)
        checkpoint = workdir_lib.restore(trainer, workdir, required=True,
                                         policy_weights=weights,
                                         planner_weights=args.planner_weights)
        answers = eval_lib.parzen_answers(trainer, config, args.samples)
        # The weights that answered: a run without an average answers
        # with its trained weights whatever was asked.
        row = {"workdir": entry, "checkpoint": checkpoint,
               "policy_weights": averaging.in_use(trainer, averaging.POLICY),
               "planner_weights": averaging.in_use(trainer,
                                                   averaging.PLANNER)}
        for kind, images in answers.items():
            got = parzen.evaluate(frame.unit(images), frame.validation,
                                  frame.test)
            scores[entry, kind] = got["test_ll"]
            gap, gap_stderr = parzen.paired_difference(got["test_ll"], real)
            row.update({f"parzen_ll_{kind}": got["ll"],
                        f"parzen_gap_{kind}": gap,
                        f"parzen_gap_stderr_{kind}": gap_stderr})
        row["parzen_ll_real"] = float(real.mean())
        print(json.dumps(row), flush=True)
    for first, second in itertools.combinations(entries, 2):
        for kind in ("fast", "refined"):
            if (first, kind) in scores and (second, kind) in scores:
                diff, stderr = parzen.paired_difference(
                    scores[first, kind], scores[second, kind])
                print(json.dumps({"first": first, "second": second,
                                  "kind": kind, "difference": diff,
                                  "stderr": stderr}), flush=True)


if __name__ == "__main__":
    main()
