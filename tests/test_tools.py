"""The diagnostic tools under `tools/`: what they change, and that they
leave the library's own numbers where the docs say they do."""

import argparse
import json

import numpy as np
import pytest

import tiny
from cooperative_tf import config_io, eval_lib, factory, tasks, train_lib
from cooperative_tf import workdir as workdir_lib
from tools import (flags, latent_scale, parzen_calibration, parzen_compare,
                   planner_labels)


def test_every_tool_reads_policy_weights_as_the_evaluation_does():
    from cooperative_tf import averaging

    assert flags.POLICY_WEIGHTS == averaging.POLICY_WEIGHTS
    parser = argparse.ArgumentParser()
    flags.add_policy_weights(parser)
    # The average by default, as --mode=eval; a name it does not know is a
    # usage error, not a silent fall-back.
    assert parser.parse_args([]).policy_weights == averaging.AVERAGED
    assert parser.parse_args(["--policy_weights=trained"]).policy_weights \
        == averaging.TRAINED
    # Each tool declares it so: refused while parsing, before any work.
    for main, required in (
            (latent_scale.main, ["--workdir=runs/a"]),
            (parzen_calibration.main, []),
            (parzen_compare.main, ["--workdirs=runs/a,runs/b"])):
        with pytest.raises(SystemExit) as stop:
            main(required + ["--policy_weights=best"])
        assert stop.value.code == 2


def test_scaled_latent_draws_x_at_the_scale_and_restores_the_draw():
    trainer = tiny.trainer("label")
    labels = np.eye(tiny.CLASSES, dtype=np.float32)[[0, 1, 2, 3]]
    plain = trainer.generate(labels, seed=5)
    with latent_scale.scaled_latent(trainer, 0.5):
        half = trainer.generate(labels, seed=5)
    # The same draw, halved: the answers come from other X.
    np.testing.assert_allclose(half["noise"], 0.5 * plain["noise"],
                               rtol=1e-6)
    assert not np.allclose(half["fast"], plain["fast"])
    # Nested blocks compose, and each exit undoes its own scale.
    with latent_scale.scaled_latent(trainer, 0.5):
        with latent_scale.scaled_latent(trainer, 2.0):
            both = trainer.generate(labels, seed=5)
        inner_undone = trainer.generate(labels, seed=5)
    np.testing.assert_allclose(both["noise"], plain["noise"], rtol=1e-6)
    np.testing.assert_allclose(inner_undone["noise"], half["noise"],
                               rtol=1e-6)
    again = trainer.generate(labels, seed=5)
    np.testing.assert_array_equal(again["noise"], plain["noise"])
    np.testing.assert_array_equal(again["fast"], plain["fast"])
    assert "sample_latent" not in vars(trainer)
    for scale in (0.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="finite number > 0"):
            with latent_scale.scaled_latent(trainer, scale):
                pass
    with pytest.raises(ValueError, match="draws no X"):  # planner_only
        with latent_scale.scaled_latent(object(), 0.8):
            pass


def _parzen(config, workdir, policy_weights, samples):
    trainer = factory.build_trainer(config)
    workdir_lib.restore(trainer, workdir, required=True,
                        policy_weights=policy_weights)
    return eval_lib.parzen_scores(trainer, config,
                                  eval_lib.eval_dataset(config), samples)


def _json_lines(capsys):
    """The rows a tool printed, one JSON object a line."""
    return [json.loads(line) for line in
            capsys.readouterr().out.strip().splitlines()]


# The mnist sample the package ships; three steps of the tiny networks,
# keeping policy and planner averages that differ from the trained weights.
TINY_RUN = ["train.policy_ema=0.5", "train.policy_lr=1e-2",
            "train.planner_ema=0.5"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_run")
    config = tasks.resolve_config("mnist", train_steps=3,
                                  overrides=tiny.LABEL + TINY_RUN)
    train_lib.train(config, str(workdir), verbose=False)
    return config, workdir


@pytest.mark.slow
def test_latent_scale_at_one_gives_the_evaluations_parzen(tiny_run, capsys):
    config, tmp_path = tiny_run
    latent_scale.main([f"--workdir={tmp_path}", "--scales=1,0.5",
                       "--samples=40"])
    rows = _json_lines(capsys)
    assert [row["scale"] for row in rows] == [1.0, 0.5]
    assert all(row["checkpoint"].endswith("ckpt-3") for row in rows)
    # Like --mode=eval, the average answers unless the trained weights
    # are asked for.
    averaged = _parzen(config, str(tmp_path), "averaged", 40)
    trained = _parzen(config, str(tmp_path), "trained", 40)
    assert averaged["parzen_ll_fast"] != trained["parzen_ll_fast"]
    for kind in ("fast", "refined", "real"):
        assert rows[0][f"parzen_ll_{kind}"] == pytest.approx(
            averaged[f"parzen_ll_{kind}"], rel=1e-6)
    # Other X, other answers; the real digits' reference does not move.
    assert rows[1]["parzen_ll_fast"] != rows[0]["parzen_ll_fast"]
    assert rows[1]["parzen_ll_real"] == rows[0]["parzen_ll_real"]


def test_latent_scale_refuses_runs_it_cannot_score_by_name(tmp_path,
                                                           capsys):
    # Refused before any checkpoint is read: the config names the run.
    planner_only = tmp_path / "planner_only"
    planner_only.mkdir()
    workdir_lib.write_config(tasks.resolve_config(
        "mnist", overrides=tiny.LABEL + ["method.name=planner_only"]),
        str(planner_only))
    with pytest.raises(SystemExit, match="planner_only run.*draws no X"):
        latent_scale.main([f"--workdir={planner_only}"])
    image = tmp_path / "zappos"
    image.mkdir()
    workdir_lib.write_config(tasks.resolve_config(
        "zappos", overrides=tiny.IMAGE_16), str(image))
    with pytest.raises(SystemExit, match="run in .* is edges-conditioned"):
        latent_scale.main([f"--workdir={image}"])
    # A bad scale is named before the run is looked at.
    for scales in ("0.8,0", "-1", "one", "", "inf", "nan"):
        with pytest.raises(SystemExit) as stop:
            latent_scale.main([f"--workdir={image}", f"--scales={scales}"])
        assert stop.value.code == 2
        assert "--scales must be comma-separated finite numbers > 0" in (
            capsys.readouterr().err)


def test_a_blur_spreads_an_impulse_by_the_gaussian_and_keeps_its_mass():
    image = np.zeros((1, 15, 15, 1), np.float32)
    image[0, 7, 7, 0] = 1.0
    got = parzen_calibration.gaussian_blur(image, 1.0)[0, :, :, 0]
    t = np.arange(-3, 4)
    kernel = np.exp(-t ** 2 / 2.0)
    kernel /= kernel.sum()
    np.testing.assert_allclose(got[4:11, 4:11], np.outer(kernel, kernel),
                               rtol=1e-5)
    assert got.sum() == pytest.approx(1.0, rel=1e-5)
    assert got[:4].max() == 0.0  # beyond three sigmas
    for sigma in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="finite number > 0"):
            parzen_calibration.gaussian_blur(image, sigma)


def test_a_shift_moves_each_image_by_at_most_a_pixel_and_keeps_its_ink():
    rng = np.random.default_rng(0)
    images = np.zeros((50, 8, 8, 1), np.float32)
    images[:, 3:5, 3:5, 0] = rng.uniform(0.5, 1.0, (50, 2, 2))
    moved = parzen_calibration.shifted(images, np.random.default_rng(1))
    seen = set()
    for before, after in zip(images, moved):
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if np.array_equal(np.roll(before, (dy, dx), (0, 1)),
                                     after)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 9  # every move occurs among 50 images


def test_fewer_distinct_keeps_the_count_and_repeats_the_first():
    images = np.arange(12, dtype=np.float32).reshape(6, 2)
    got = parzen_calibration.fewer_distinct(images, 2)
    assert got.shape == images.shape
    np.testing.assert_array_equal(got[:, 0], [0, 2, 0, 2, 0, 2])
    with pytest.raises(ValueError, match=r"distinct must be in \[1, 6\]"):
        parzen_calibration.fewer_distinct(images, 7)


def test_refinement_move_splits_background_and_ink_and_finds_the_data():
    real = np.zeros((2, 2, 2, 1), np.float32)
    real[0, 0, 0] = 1.0  # one digit with one inked pixel, one blank
    fast = np.zeros((1, 2, 2, 1), np.float32)
    fast[0, 0, 0] = 0.5  # ink at the real digit's pixel, weaker
    refined = fast.copy()
    refined[0, 0, 0] = 1.0    # the chain completes the stroke: +0.5
    refined[0, 1, 1] = -0.2   # and darkens one background pixel past 0
    got = parzen_calibration.refinement_move(fast, refined, real)
    assert got["move_mean_abs"] == pytest.approx(0.7 / 4)
    assert got["move_mean_abs_ink"] == pytest.approx(0.5)
    assert got["move_mean_abs_background"] == pytest.approx(0.2 / 3)
    assert got["move_mean_background"] == pytest.approx(-0.2 / 3)
    assert got["outside_share"] == pytest.approx(0.25)
    assert got["outside_mean"] == pytest.approx(0.2)
    assert got["nearest_real_fast"] == pytest.approx(0.5)
    assert got["nearest_real_refined"] == pytest.approx(0.2, abs=1e-6)
    with pytest.raises(ValueError, match="paired answers of one shape"):
        parzen_calibration.refinement_move(fast, refined[:, :1], real)


@pytest.mark.slow
def test_parzen_calibration_scores_as_the_evaluation_does(tiny_run, capsys):
    config, workdir = tiny_run
    parzen_calibration.main([f"--workdir={workdir}", "--samples=40",
                             "--policy_weights=trained"])
    rows = _json_lines(capsys)
    by = {(row["samples"], row["change"]): row for row in rows}
    assert [row["change"] for row in rows if row["samples"] == "real"] == [
        name for name, _ in parzen_calibration.changes(40)]
    assert {row["count"] for row in rows} == {40}
    assert {row["checkpoint"].rsplit("/", 1)[-1] for row in rows} == {
        "ckpt-3"}
    # Unchanged, the real digits and the answers score as --mode=eval
    # scores them, with the weights asked for (the run keeps an average
    # that answers otherwise).
    # Clipped, they are what --mode=eval scores (`langevin.clip_answer`);
    # as they are, what it scores with the clip off.
    expected = _parzen(config, str(workdir), "trained", 40)
    unclipped = _parzen(config_io.override(
        config, ["langevin.clip_answer=false"]), str(workdir), "trained", 40)
    for kind in ("fast", "refined"):
        assert by[(kind, "clipped to [0, 1]")]["parzen_ll"] == \
            pytest.approx(expected[f"parzen_ll_{kind}"], rel=1e-6)
        assert by[(kind, "as they are")]["parzen_ll"] == pytest.approx(
            unclipped[f"parzen_ll_{kind}"], rel=1e-6)
    assert by[("real", "as they are")]["parzen_ll"] == pytest.approx(
        expected["parzen_ll_real"], rel=1e-6)
    # A change changes the score; every gap is to the unchanged real rows,
    # paired digit by digit.
    assert by[("real", "blurred, sigma 0.5 px")]["parzen_ll"] != by[
        ("real", "as they are")]["parzen_ll"]
    assert by[("real", "as they are")]["gap_to_real"] == 0.0
    assert by[("real", "as they are")]["gap_to_real_stderr"] == 0.0
    for row in rows:
        if "parzen_ll" in row:
            assert row["gap_to_real"] == pytest.approx(
                row["parzen_ll"] - by[("real", "as they are")]["parzen_ll"],
                abs=1e-6), row
    assert by[("fast", "as they are")]["gap_to_real_stderr"] > 0
    # The policy's tanh keeps fast answers in range: clipping is a no-op.
    assert by[("fast", "clipped to [0, 1]")]["parzen_ll"] == pytest.approx(
        by[("fast", "as they are")]["parzen_ll"], rel=1e-6)
    move = by[("refined", "move")]
    assert move["move_mean_abs"] > 0
    assert move["nearest_real_fast"] > 0
    # The move line reads the unclipped chain: wherever a refined pixel
    # left [0, 1], clipping changed the score, and only there.
    changed = by[("refined", "clipped to [0, 1]")]["parzen_ll"] != by[
        ("refined", "as they are")]["parzen_ll"]
    assert changed == (move["outside_share"] > 0)


def test_parzen_calibration_refuses_what_it_cannot_score_by_name(
        tmp_path, capsys):
    with pytest.raises(SystemExit, match="Task 'zappos' is edges-conditioned"):
        parzen_calibration.main(["--task=zappos"])
    # A run without a checkpoint is named before any scoring.
    workdir_lib.write_config(tasks.resolve_config(
        "mnist", overrides=tiny.LABEL), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        parzen_calibration.main([f"--workdir={tmp_path}"])
    with pytest.raises(SystemExit) as stop:
        parzen_calibration.main(["--samples=2"])
    assert stop.value.code == 2
    assert "--samples must be at least 3" in capsys.readouterr().err


@pytest.mark.slow
def test_parzen_compare_pairs_two_runs_as_the_evaluation_scores_them(
        tiny_run, tmp_path, capsys):
    config, workdir = tiny_run
    other = tmp_path / "seed1"
    train_lib.train(tasks.resolve_config(
        "mnist", train_steps=3,
        overrides=tiny.LABEL + TINY_RUN + ["train.seed=1"]), str(other),
        verbose=False)
    parzen_compare.main([f"--workdirs={workdir},{other}", "--samples=40",
                         "--policy_weights=trained"])
    rows = _json_lines(capsys)
    runs = {row["workdir"]: row for row in rows if "workdir" in row}
    pairs = {row["kind"]: row for row in rows if "first" in row}
    # Each run's scores are --mode=eval's, its gap paired against the
    # same real digits.
    expected = _parzen(config, str(workdir), "trained", 40)
    for kind in ("fast", "refined", "real"):
        assert runs[str(workdir)][f"parzen_ll_{kind}"] == pytest.approx(
            expected[f"parzen_ll_{kind}"], rel=1e-6)
    assert runs[str(workdir)]["parzen_gap_fast"] == pytest.approx(
        expected["parzen_gap_fast"], rel=1e-6)
    # The pair: the first run's score minus the second's, digit by digit.
    for kind in ("fast", "refined"):
        assert pairs[kind]["difference"] == pytest.approx(
            runs[str(workdir)][f"parzen_ll_{kind}"]
            - runs[str(other)][f"parzen_ll_{kind}"], abs=1e-6)
        assert pairs[kind]["stderr"] > 0
    # A run against itself differs by nothing.
    parzen_compare.main([f"--workdirs={workdir},{workdir}", "--samples=40",
                         "--policy_weights=trained"])
    same = [row for row in _json_lines(capsys) if "first" in row]
    assert {(row["difference"], row["stderr"]) for row in same} == {(0, 0)}
    # One run's trained weights against its average, each scored as
    # --mode=eval scores it with those weights.
    parzen_compare.main([f"--workdirs={workdir}@trained,{workdir}@averaged",
                         "--samples=40"])
    rows = _json_lines(capsys)
    runs = {row["workdir"]: row for row in rows if "workdir" in row}
    averaged = _parzen(config, str(workdir), "averaged", 40)
    assert runs[f"{workdir}@averaged"]["policy_weights"] == "averaged"
    assert runs[f"{workdir}@averaged"]["parzen_ll_fast"] == pytest.approx(
        averaged["parzen_ll_fast"], rel=1e-6)
    assert runs[f"{workdir}@trained"]["parzen_ll_fast"] == pytest.approx(
        expected["parzen_ll_fast"], rel=1e-6)
    assert averaged["parzen_ll_fast"] != expected["parzen_ll_fast"]


def test_a_compare_entry_names_its_policy_weights_or_is_refused(tmp_path):
    assert parzen_compare.split_entry("runs/a") == ("runs/a", None)
    assert parzen_compare.split_entry("runs/a@averaged") == (
        "runs/a", "averaged")
    with pytest.raises(ValueError, match="@best, which names no policy"):
        parzen_compare.split_entry("runs/a@best")
    # A directory whose own name holds an @ is a run, not a suffix.
    odd = tmp_path / "runs@2"
    odd.mkdir()
    assert parzen_compare.split_entry(str(odd)) == (str(odd), None)
    # The average asked for by name, of a run that kept none, is refused
    # before any scoring (the trained weights would answer under its name).
    workdir_lib.write_config(tasks.resolve_config(
        "mnist", overrides=tiny.LABEL + ["train.policy_ema=0",
                                         "train.planner_ema=0"]),
        str(tmp_path))
    with pytest.raises(SystemExit, match="kept none"):
        parzen_compare.main([f"--workdirs={tmp_path}@averaged,{tmp_path}"])


def test_parzen_compare_names_what_it_cannot_compare(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        parzen_compare.main(["--workdirs=runs/a"])
    assert stop.value.code == 2
    assert "at least 2 runs" in capsys.readouterr().err
    workdir_lib.write_config(tasks.resolve_config(
        "zappos", overrides=tiny.IMAGE), str(tmp_path))
    with pytest.raises(SystemExit, match="edges-conditioned"):
        parzen_compare.main([f"--workdirs={tmp_path},{tmp_path}"])


def test_label_ranks_read_the_own_label_by_hand():
    values = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0], [2.0, 2.0, 0.0]])
    got = planner_labels.label_ranks(values, np.array([0, 2, 0]))
    # Row 0 wins; row 1's own label has one above it; row 2 ties for first,
    # which goes to the lower label, its own (as argmax).
    assert got["accuracy"] == pytest.approx(2 / 3)
    assert got["mean_rank_own"] == pytest.approx(1 / 3)
    assert got["share_own_last"] == 0.0
    assert got["argmax_counts"] == [2, 1, 0]
    assert (got["chance_rank"], got["chance_last"]) == (1.0, pytest.approx(
        1 / 3))
    # A planner that values the own label least ranks it last every time.
    labels = np.array([0, 1, 2, 0, 1, 2])
    anti = planner_labels.label_ranks(-np.eye(3)[labels], labels)
    assert (anti["accuracy"], anti["share_own_last"]) == (0.0, 1.0)
    assert anti["own_minus_mean_median"] < 0
    # Label levels that swamp the image: the argmax names label 0 for all,
    # and removing each label's level over the images recovers the label.
    levels = planner_labels.label_ranks(
        np.eye(3)[labels] + np.array([100.0, 0.0, 0.0]), labels)
    assert levels["accuracy"] == pytest.approx(1 / 3)
    assert levels["argmax_counts"] == [6, 0, 0]
    assert levels["accuracy_without_levels"] == 1.0
    assert levels["mean_rank_own_without_levels"] == 0.0
    # Raw, labels 1 and 2 rank second behind label 0's level.
    assert levels["mean_rank_own"] == pytest.approx(4 / 6)
    assert anti["mean_rank_own_without_levels"] == 2.0
    assert anti["share_own_last_without_levels"] == 1.0
    with pytest.raises(ValueError, match="labels must lie in"):
        planner_labels.label_ranks(values, np.array([0, 3, 0]))


def test_paired_accuracy_counts_what_each_planner_names_alone():
    labels = np.array([0, 1, 2, 0, 1])
    # This planner names images 0, 1, 2, 3; the other names 0, 3 and 4.
    here = np.eye(3)[[0, 1, 2, 0, 0]]
    there = np.eye(3)[[0, 2, 1, 0, 1]]
    got = planner_labels.paired_accuracy(here, there, labels)
    assert got["accuracy_against"] == pytest.approx(3 / 5)
    assert got["difference"] == pytest.approx(4 / 5 - 3 / 5)
    assert (got["named_only_here"], got["named_only_against"]) == (2, 1)
    # Per image: 0, +1, +1, 0, -1; the error of their mean, ddof 0.
    d = np.array([0.0, 1.0, 1.0, 0.0, -1.0])
    assert got["difference_stderr"] == pytest.approx(d.std() / np.sqrt(5))
    same = planner_labels.paired_accuracy(here, here, labels)
    assert (same["difference"], same["difference_stderr"]) == (0, 0)
    with pytest.raises(ValueError, match="must both be"):
        planner_labels.paired_accuracy(here, there[:, :2], labels)


@pytest.mark.slow
def test_planner_labels_reads_the_planner_as_the_evaluation_does(
        tiny_run, tmp_path, capsys):
    from cooperative_tf import classifier, quality

    config, workdir = tiny_run
    images, labels = classifier.load_split(config.data,
                                           config.data.eval_split)
    medians = {}
    # The planner's average by default, as --mode=eval reads it; its
    # trained weights when asked.
    for weights, momentum in (("averaged", 0.5), ("trained", 0.0)):
        planner_labels.main([f"--workdir={workdir}", "--steps=3",
                             f"--planner_weights={weights}"])
        (row,) = _json_lines(capsys)
        assert row["step"] == 3 and row["checkpoint"].endswith("ckpt-3")
        assert (row["planner_weights"], row["planner_ema"]) == (weights,
                                                                momentum)
        trainer = factory.build_trainer(config)
        workdir_lib.restore(trainer, str(workdir), required=True,
                            policy_weights="trained", planner_weights=weights)
        assert row["images"] == len(images)
        assert row["accuracy"] == pytest.approx(quality.planner_accuracy(
            trainer.planner, images, labels))
        # Every number, not only the coarse accuracy, is the restored
        # planner's.
        values = np.asarray(trainer.planner.class_values(images), np.float64)
        expected = planner_labels.label_ranks(values, labels)
        for key in ("mean_rank_own", "own_minus_mean_median",
                    "accuracy_without_levels"):
            assert row[key] == pytest.approx(expected[key], rel=1e-5), key
        assert sum(row["argmax_counts"]) == len(images)
        medians[weights] = row["own_minus_mean_median"]
    assert medians["averaged"] != pytest.approx(medians["trained"], rel=1e-6)
    # Steps the run did not keep are named with those it did.
    with pytest.raises(SystemExit, match=r"step\(s\) \[5\]; it keeps \[3\]"):
        planner_labels.main([f"--workdir={workdir}", "--steps=3,5"])
    # Paired with a run's planner over the same images: against itself,
    # nothing differs.
    planner_labels.main([f"--workdir={workdir}", f"--against={workdir}",
                         "--planner_weights=trained"])
    (row,) = _json_lines(capsys)
    assert row["against"].endswith("ckpt-3")
    assert (row["difference"], row["difference_stderr"]) == (0, 0)
    assert row["accuracy_against"] == row["accuracy"]
    assert (row["against_planner_weights"], row["against_planner_ema"]) == (
        "trained", 0.0)
    with pytest.raises(SystemExit, match=r"step\(s\) \[7\]; it keeps \[3\]\. "
                       "Name kept steps with --against_step"):
        planner_labels.main([f"--workdir={workdir}", f"--against={workdir}",
                             "--against_step=7"])
    # A run of another task reads other images: refused by name.
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    workdir_lib.write_config(tasks.resolve_config(
        "cifar10", overrides=tiny.LABEL), str(cifar))
    with pytest.raises(SystemExit, match="another task"):
        planner_labels.main([f"--workdir={workdir}", f"--against={cifar}"])
    # fashion_mnist has mnist's shapes: the task's name tells them apart.
    fashion = tmp_path / "fashion"
    fashion.mkdir()
    workdir_lib.write_config(tasks.resolve_config(
        "fashion_mnist", overrides=tiny.LABEL), str(fashion))
    with pytest.raises(SystemExit, match="run of fashion_mnist .*another "
                       "task"):
        planner_labels.main([f"--workdir={workdir}", f"--against={fashion}"])
    with pytest.raises(SystemExit) as stop:
        planner_labels.main([f"--workdir={workdir}", "--against_step=3"])
    assert stop.value.code == 2


def test_planner_labels_refuses_an_image_run_by_name(tmp_path):
    workdir_lib.write_config(tasks.resolve_config(
        "zappos", overrides=tiny.IMAGE), str(tmp_path))
    with pytest.raises(SystemExit, match="edges-conditioned; only a label"):
        planner_labels.main([f"--workdir={tmp_path}"])
