"""Quality metrics of a run: the judge classifier, label and image scores,
periodic evaluation during training, the eval table."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tiny

import pipelines
from cooperative_tf import eval_lib, parzen, quality, tasks, train_lib
from cooperative_tf import workdir as workdir_lib

# The mnist task on the digits that ship inside the package (no data flag).
MNIST_SAMPLE = tasks.get_task("mnist")


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("judge")
    return quality.label_judge(MNIST_SAMPLE.data, str(workdir)), workdir


class ReplayTrainer:
    """Stands in for a trainer: answers label c with real images of label
    c + `offset` (mod 10), fast and refined alike."""

    answers = ("fast", "refined")

    def __init__(self, images, labels, offset=0):
        self.by_label = {c: images[labels == c] for c in range(10)}
        self.offset = offset
        # No class_values: planner_accuracy is NaN.
        self.networks = {"planner": object()}

    def generate(self, condition, langevin_steps=None, step_size=None,
                 seed=0, num_samples=1):
        wanted = (np.argmax(np.asarray(condition), -1) + self.offset) % 10
        rng = np.random.default_rng(seed)
        picks = np.stack([self.by_label[c][rng.integers(
            len(self.by_label[c]))] for c in wanted])
        answer = tf.constant(picks)
        return {"fast": answer, "refined": answer}


@pytest.mark.slow
def test_judge_reads_real_digits_and_caches_itself(judge):
    got, workdir = judge
    # Trained on the 900 sample digits, read on 100 held-out ones: chance is
    # 0.1; the judge reads 0.95 of them on an AMD EPYC (AVX-512); other
    # CPUs round differently, and one error on 100 digits is about 0.02.
    assert got.real_accuracy >= 0.85
    assert got.features.shape[0] == got.images.shape[0] == len(got.labels)
    # The second call loads the cached classifier: same accuracy, no retrain.
    again = quality.label_judge(MNIST_SAMPLE.data, str(workdir))
    assert again.real_accuracy == got.real_accuracy
    assert (workdir / "classifier" / "classifier.keras").exists()


@pytest.mark.slow
def test_label_quality_of_real_and_of_mislabelled_answers(judge):
    got, _ = judge
    honest = quality.label_quality(
        ReplayTrainer(got.images, got.labels), got, 10, num_samples=200)
    # Real held-out digits answered for their own label score like the
    # judge's own accuracy; the same digits under a shifted label do not.
    assert honest["conditional_accuracy_fast"] == pytest.approx(
        got.real_accuracy, abs=0.08)
    assert honest["frechet_fast"] < 0.5 * got.frechet_real + 20
    wrong = quality.label_quality(
        ReplayTrainer(got.images, got.labels, offset=3), got, 10,
        num_samples=200)
    assert wrong["conditional_accuracy_fast"] < 0.1
    assert wrong["min_class_accuracy_fast"] < 0.1
    assert honest["delta_conditional_accuracy"] == 0.0
    assert np.isnan(honest["planner_accuracy"])


class TablePlanner:
    """Stands in for a label planner: image n's values are row n of a
    table, wherever a batch starts."""

    condition = "label"

    def __init__(self, table):
        self.table = np.asarray(table, np.float32)

    def class_values(self, y):
        start = int(y[0, 0, 0, 0])  # image n holds n in every pixel
        return tf.constant(self.table[start:start + len(y)])


def test_planner_accuracy_reads_argmax_across_batches_and_refuses_nan():
    images = np.arange(5, dtype=np.float32)[:, None, None, None] * np.ones(
        [5, 2, 2, 1], np.float32)
    table = [[3, 1, 0], [0, 2, 1], [5, 0, 9], [1, 1, 4], [0, 7, 1]]
    labels = np.array([0, 1, 2, 0, 2])  # rows 0-2 right, 3 and 4 wrong
    planner = TablePlanner(table)
    values = quality.planner_class_values(planner, images, batch_size=2)
    np.testing.assert_array_equal(values, np.asarray(table, np.float64))
    assert quality.planner_accuracy(planner, images, labels,
                                    batch_size=2) == pytest.approx(0.6)
    # A NaN value would make argmax name label 0, a verdict from nothing.
    table[4][1] = np.nan
    assert np.isnan(quality.planner_accuracy(TablePlanner(table), images,
                                             labels, batch_size=2))


def test_with_deltas_and_the_table():
    row = quality.with_deltas({"psnr_fast": 10.0, "psnr_refined": 12.5,
                               "examples": 4.0})
    assert row["delta_psnr"] == 2.5
    table = quality.format_table(row)
    assert "psnr" in table and "+2.5000" in table and "examples" in table


def test_versus_steps_times_each_count():
    rows = quality.versus_steps(lambda n: {"psnr_refined": float(n)},
                                steps=(0, 3))
    assert [r["steps"] for r in rows] == [0, 3]
    assert [r["psnr_refined"] for r in rows] == [0.0, 3.0]
    assert all(r["seconds"] >= 0 for r in rows)


TINY_IMAGE = tiny.IMAGE + ["train.eval_every=2", "train.eval_samples=6",
                           "train.reconstruction_weight=1"]


def _summary_tags(folder):
    """{tag: [steps]} of the TensorBoard event files in `folder`."""
    tags = {}
    for path in sorted(glob.glob(os.path.join(folder, "events.out.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


@pytest.mark.slow
def test_image_run_logs_quality_and_history_and_eval_reports_it(tmp_path):
    config = tasks.resolve_config("zappos", train_steps=4,
                                  overrides=TINY_IMAGE)
    workdir = str(tmp_path / "run")
    train_lib.train(config, workdir, verbose=False)
    rows = workdir_lib.read_jsonl(workdir)
    assert [r["step"] for r in rows] == [2, 4]
    for name in ("psnr", "ssim", "l1", "colour_error", "diversity",
                 "checkerboard", "detail_ratio"):
        for kind in ("fast", "refined"):
            assert np.isfinite(rows[-1][f"{name}_{kind}"]), name
    assert -1 <= rows[-1]["refinement_alignment"] <= 1
    assert rows[-1]["planner_slope"] > 0
    assert rows[-1]["examples"] == 6
    # Untrained answers still differ with X.
    assert rows[-1]["diversity_fast"] > 0
    history = workdir_lib.read_jsonl(workdir, workdir_lib.HISTORY_FILE)
    assert [r["step"] for r in history] == [1, 2, 3, 4]
    assert "reconstruction_l1" in history[0]
    # The same numbers, the sample grid and the config for TensorBoard.
    tags = _summary_tags(os.path.join(workdir, "tensorboard", "train"))
    for name in ("planner_loss", "value_gap", "refinement", "acceptance",
                 "policy_lr", "planner_lr", "seconds_per_step",
                 "examples_per_second", "samples", "config"):
        assert name in tags, (name, sorted(tags))
    assert tags["planner_loss"] == [1, 2, 3, 4]
    eval_tags = _summary_tags(os.path.join(workdir, "tensorboard", "eval"))
    assert eval_tags["psnr_refined"] == [2, 4]

    result = eval_lib.evaluate(config, workdir, refine_steps=(0, 1),
                                versus_samples=4)
    assert result["examples"] == 20  # the sample's whole val split
    assert result["policy_ema"] == 0.0  # no average kept: trained weights
    assert [r["steps"] for r in result["versus_steps"]] == [0, 1]
    zero = result["versus_steps"][0]
    # Zero refinement steps: the refined answer is the fast one.
    assert zero["psnr_refined"] == pytest.approx(zero["psnr_fast"])
    path = eval_lib.write_eval(workdir, result)
    assert json.load(open(path))["versus_steps"][1]["steps"] == 1


def test_a_line_cut_short_is_skipped(tmp_path):
    workdir_lib.append_jsonl(str(tmp_path / "quality.jsonl"), 5, {"a": 1.0})
    with open(tmp_path / "quality.jsonl", "a") as f:
        f.write('{"step": 6, "a"')  # killed mid-write
    assert workdir_lib.read_jsonl(str(tmp_path)) == [{"step": 5, "a": 1.0}]


def _replayed_training_digits(trainer_class=None, answers=("fast",)):
    """A trainer (default `ReplayTrainer`) whose `answers` replay the
    sample's 900 training digits (by label), and the held-out split."""
    d = MNIST_SAMPLE.data
    train = next(iter(pipelines.build_dataset(d, d.train_split, 900,
                                              training=False)))
    trainer = (trainer_class or ReplayTrainer)(
        train["target"].numpy(), np.argmax(train["condition"].numpy(), -1))
    trainer.answers = answers
    held_out = pipelines.build_dataset(d, d.eval_split, 100, training=False)
    return trainer, held_out


def test_parzen_halves_and_reference_mix_the_classes_of_a_sorted_file():
    # The shipped digits are sorted by class. Answers that replay real
    # training digits of every label must score like the real reference,
    # and each half of the held-out digits like the other: before the
    # shuffle the reference was the first classes only and sigma was chosen
    # on digits 0-4 to score 5-9.
    trainer, held_out = _replayed_training_digits()
    got = eval_lib.parzen_scores(trainer, MNIST_SAMPLE, held_out, 300)
    for kind in ("fast", "real"):
        spread = 4 * got[f"parzen_ll_stderr_{kind}"] + 20
        assert abs(got[f"parzen_ll_{kind}"]
                   - got[f"parzen_validation_ll_{kind}"]) < spread, got
    assert abs(got["parzen_ll_real"] - got["parzen_ll_fast"]) < \
        4 * (got["parzen_ll_stderr_real"] + got["parzen_ll_stderr_fast"]), got
    # The gap to the real digits, paired over the same scored digits: the
    # difference of the two scores, with a smaller error than either.
    assert got["parzen_gap_fast"] == pytest.approx(
        got["parzen_ll_fast"] - got["parzen_ll_real"], abs=1e-6)
    assert 0 < got["parzen_gap_stderr_fast"] < min(
        got["parzen_ll_stderr_fast"], got["parzen_ll_stderr_real"])
    # As many answers as real digits: nothing to match; one answer kind:
    # no refined minus fast.
    assert "parzen_ll_equal_fast" not in got
    assert "delta_parzen_ll" not in got


class NoisyFastTrainer(ReplayTrainer):
    """Refined answers replay real digits; fast ones are the same digits
    with Gaussian noise, as a policy the planner cleans up."""

    def generate(self, condition, seed=0, **kwargs):
        refined = super().generate(condition, seed=seed)["refined"]
        noise = np.random.default_rng(seed + 100).normal(
            0.0, 0.3, refined.shape).astype(np.float32)
        return {"fast": tf.clip_by_value(refined + noise, -1.0, 1.0),
                "refined": refined}


def test_parzen_refined_minus_fast_is_paired_and_sees_a_real_gain():
    trainer, held_out = _replayed_training_digits(
        NoisyFastTrainer, answers=("fast", "refined"))
    got = eval_lib.parzen_scores(trainer, MNIST_SAMPLE, held_out, 300)
    assert got["delta_parzen_ll"] == pytest.approx(
        got["parzen_ll_refined"] - got["parzen_ll_fast"], abs=1e-6)
    # The cleaned answers score clearly higher, by many paired errors,
    # though the unpaired errors of the two scores would overlap more.
    paired_stderr = got["delta_parzen_ll_paired_stderr"]
    assert got["delta_parzen_ll"] > 4 * paired_stderr > 0
    assert paired_stderr < min(got["parzen_ll_stderr_fast"],
                               got["parzen_ll_stderr_refined"])
    # The table shows the paired error (a name `format_table` would take
    # for the delta of a fast / refined pair is hidden there).
    assert "delta_parzen_ll_paired_stderr" in quality.format_table(got)
    for kind in ("fast", "refined"):
        assert got[f"parzen_gap_{kind}"] == pytest.approx(
            got[f"parzen_ll_{kind}"] - got["parzen_ll_real"], abs=1e-6)


class ChainTrainer(ReplayTrainer):
    """Fast answers replay real digits; n Langevin steps add noise of
    scale 0.03 n to them, as a planner whose longer chains leave the data."""

    def generate(self, condition, langevin_steps=None, seed=0, **kwargs):
        fast = super().generate(condition, seed=seed)["fast"]
        steps = 10 if langevin_steps is None else langevin_steps
        noise = np.random.default_rng(seed + 100).normal(
            0.0, 0.03 * steps, fast.shape).astype(np.float32)
        return {"fast": fast,
                "refined": tf.clip_by_value(fast + noise, -1.0, 1.0)}


def test_parzen_against_refinement_steps_pairs_each_count_with_fast(
        monkeypatch):
    trainer, held_out = _replayed_training_digits(
        ChainTrainer, answers=("fast", "refined"))
    frame = eval_lib.parzen_frame(MNIST_SAMPLE, held_out, 300)
    got = eval_lib.parzen_versus_steps(trainer, MNIST_SAMPLE, frame, 300,
                                       [0, 5, 20, 5])
    assert sorted(got) == [0, 5, 20]  # a repeated count is scored once
    # No steps: the refined answers are the fast ones.
    assert got[0]["delta_parzen_ll"] == 0
    assert got[0]["parzen_ll_refined"] == got[0]["parzen_ll_fast"]
    # One fast score for every count, and each delta is refined - fast.
    assert len({row["parzen_ll_fast"] for row in got.values()}) == 1
    for row in got.values():
        assert row["delta_parzen_ll"] == pytest.approx(
            row["parzen_ll_refined"] - row["parzen_ll_fast"], abs=1e-6)
    # Chains that leave the digits score lower the longer they run, by
    # many paired errors.
    assert got[20]["delta_parzen_ll"] < got[5]["delta_parzen_ll"] < 0
    assert -got[20]["delta_parzen_ll"] > \
        4 * got[20]["delta_parzen_ll_paired_stderr"]
    # And the count that the main score used gives the main score.
    main = eval_lib.parzen_scores(trainer, MNIST_SAMPLE, held_out, 300,
                                  frame=frame)
    at_ten = eval_lib.parzen_versus_steps(trainer, MNIST_SAMPLE, frame, 300,
                                          [10])[10]
    assert at_ten["parzen_ll_refined"] == main["parzen_ll_refined"]
    assert at_ten["delta_parzen_ll"] == pytest.approx(
        main["delta_parzen_ll"], abs=1e-9)

    # Given the main scores (as `evaluate` gives them), the fast answers
    # and the main count are not generated again, and every row is the
    # same as without them.
    scores, test_ll = eval_lib.parzen_scores(
        trainer, MNIST_SAMPLE, held_out, 300, frame=frame,
        return_test_ll=True)
    assert scores == main and set(test_ll) >= {"fast", "refined", "real"}
    generated = []
    answers = eval_lib.parzen_answers
    monkeypatch.setattr(eval_lib, "parzen_answers", lambda *a, **k: (
        generated.append(k["langevin_steps"]) or answers(*a, **k)))
    reused = eval_lib.parzen_versus_steps(
        trainer, MNIST_SAMPLE, frame, 300, [0, 10, 20],
        scored=(10, scores, test_ll))
    assert generated == [0, 20]
    for n, want in ((0, got[0]), (10, at_ten), (20, got[20])):
        assert reused[n] == pytest.approx(want, abs=1e-9), n


@pytest.mark.slow
def test_the_planner_alone_is_scored_against_refinement_steps(
        tmp_path, monkeypatch):
    # planner_only answers refined only: its test-time compute rows have no
    # fast answer to pair a Parzen score with, and must not ask for one.
    tiny.short_judge(monkeypatch, epochs=1)
    config = tasks.resolve_config("mnist", train_steps=1, overrides=(
        tiny.LABEL + ["method.name=planner_only",
                      "method.planner_only_steps=2"]))
    train_lib.train(config, str(tmp_path), verbose=False)
    result = eval_lib.evaluate(config, str(tmp_path), parzen_samples=20,
                               quality_samples=20, refine_steps=(0, 1),
                               versus_samples=20)
    assert np.isfinite(result["parzen_ll_refined"])
    assert "parzen_ll_fast" not in result and "delta_parzen_ll" not in result
    rows = result["versus_steps"]
    assert [r["steps"] for r in rows] == [0, 1]
    assert not any("parzen_ll_refined" in r for r in rows)


def test_parzen_also_scores_as_many_answers_as_real_digits(monkeypatch):
    # 1,200 answers against the 900 training digits of the sample: the
    # answers are also scored at 900, the count of the real reference, and
    # those 900 are the first (labels balanced) of the 1,200.
    trainer, held_out = _replayed_training_digits()
    seen = []
    real_evaluate = parzen.evaluate

    def recording(samples, validation, test):
        seen.append(np.asarray(samples))
        return real_evaluate(samples, validation, test)

    monkeypatch.setattr(parzen, "evaluate", recording)
    got = eval_lib.parzen_scores(trainer, MNIST_SAMPLE, held_out, 1200)
    assert got["parzen_real_samples"] == 900
    assert [len(s) for s in seen] == [1200, 900, 900]
    np.testing.assert_array_equal(seen[1], seen[0][:900])
    for name in ("fast", "equal_fast", "real"):
        assert np.isfinite(got[f"parzen_ll_{name}"]), name
        assert got[f"parzen_nearest_{name}"] > 0, name
    # Fewer samples lie farther from the scored digits.
    assert got["parzen_nearest_equal_fast"] >= got["parzen_nearest_fast"]


def test_digits_framed_by_any_reader_are_told_by_their_border():
    # What every digit reader makes of 28x28 digits (pipelines.source.
    # frame_digits): a 2-pixel black border in 32x32; Parzen scores the 28x28.
    digits = np.random.default_rng(0).uniform(-1, 1, (3, 28, 28, 1))
    framed = np.pad(digits, ((0, 0), (2, 2), (2, 2), (0, 0)),
                    constant_values=-1.0)
    assert eval_lib._digit_framed(framed)
    framed[1, 31, 7, 0] = -0.5  # one lit border pixel: not a framed set
    assert not eval_lib._digit_framed(framed)
    assert not eval_lib._digit_framed(framed[:0])


def test_a_cached_judge_is_reused_however_its_folder_is_spelt(
        tmp_path, monkeypatch):
    import dataclasses

    import keras

    from cooperative_tf import classifier as classifier_lib

    (tmp_path / "digits").mkdir()
    monkeypatch.chdir(tmp_path)
    workdir = tmp_path / "w"
    # A judge cached by a run that named the folder relatively.
    cached = dataclasses.replace(MNIST_SAMPLE.data, data_dir="./digits/")
    model = classifier_lib.FeatureClassifier(filters=(4,), feature_dim=8)
    model(np.zeros([1, 32, 32, 1], np.float32))
    (workdir / "classifier").mkdir(parents=True)
    model.save(str(workdir / "classifier" / "classifier.keras"))
    # As such a run wrote it (before folders were compared by real path).
    fingerprint = dict(classifier_lib._fingerprint(cached),
                       data_dir="./digits/")
    (workdir / "classifier" / "classifier.json").write_text(json.dumps(
        {"data": fingerprint, "accuracy": 0.5}))

    def retrain(*args, **kwargs):
        raise AssertionError("the cached judge was trained again")

    monkeypatch.setattr(classifier_lib, "train_classifier", retrain)
    # The same folder by its absolute path: the cached judge is read.
    same = dataclasses.replace(cached, data_dir=str(tmp_path / "digits"))
    judge, accuracy = classifier_lib.get_classifier(same, str(workdir))
    assert accuracy == 0.5 and isinstance(judge, keras.Model)
    # A judge of an older recipe (its fingerprint has none) is trained again.
    (workdir / "classifier" / "classifier.json").write_text(json.dumps(
        {"data": {k: v for k, v in fingerprint.items() if k != "recipe"},
         "accuracy": 0.5}))
    with pytest.raises(AssertionError, match="trained again"):
        classifier_lib.get_classifier(same, str(workdir))
    # Another folder is other data: the judge is trained for it.
    (tmp_path / "other").mkdir()
    other = dataclasses.replace(cached, data_dir=str(tmp_path / "other"))
    with pytest.raises(AssertionError, match="trained again"):
        classifier_lib.get_classifier(other, str(workdir))


def test_the_judge_is_trained_alike_twice_and_in_float32(monkeypatch,
                                                         tmp_path):
    import keras

    from cooperative_tf import classifier as classifier_lib

    # A few dozen sample digits, one epoch: enough batches for a parallel
    # map's draws to interleave, as they did when no two judges were alike.
    data = MNIST_SAMPLE.data
    images, labels = classifier_lib.load_split(data, data.train_split)
    monkeypatch.setattr(classifier_lib, "load_split",
                        lambda d, split, batch_size=256: (images[:96],
                                                          labels[:96]))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        first, accuracy = classifier_lib.train_classifier(
            data, epochs=2, batch_size=16)
        # The run's mixed policy reaches neither the judge trained nor the
        # judge loaded under it.
        path = str(tmp_path / "judge.keras")
        first.save(path)
        loaded = keras.saving.load_model(path)
        for judge in (first, loaded):
            assert judge.features(images[:2]).dtype == tf.float32
            assert {layer.compute_dtype for layer in judge.blocks} == {
                "float32"}
    finally:
        keras.config.set_dtype_policy(previous)
    second, again = classifier_lib.train_classifier(data, epochs=2,
                                                    batch_size=16)
    assert accuracy == pytest.approx(again, abs=0.02)
    # The crops drawn in thread order moved weights by far more than
    # kernels' rounding could.
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # Another seed is another judge: the weights do depend on it.
    third, _ = classifier_lib.train_classifier(data, epochs=2,
                                               batch_size=16, seed=1)
    assert any(np.abs(a - b).max() > 1e-3 for a, b in
               zip(first.get_weights(), third.get_weights()))


def test_image_quality_reports_the_planners_slope_at_the_photos():
    trainer = tiny.trainer("image")
    batches = [tiny.batch("image", size) for size in (3, 2)]
    got = quality.image_quality(trainer, batches, "image",
                                diversity_samples=2)
    targets = np.concatenate([np.asarray(b["target"]) for b in batches])
    conditions = np.concatenate([np.asarray(b["condition"])
                                 for b in batches])
    assert got["examples"] == 5
    assert got["planner_slope"] == pytest.approx(
        quality.planner_slope(trainer.planner, targets, conditions),
        rel=1e-5)
    assert got["planner_slope"] > 0


@pytest.mark.parametrize("condition", ["label", "image"])
def test_planner_slope_is_the_mean_norm_of_df_dy(condition):
    planner = tiny.planner(condition)
    images, conditions = tiny.planner_inputs(condition)
    images, conditions = images.numpy(), conditions.numpy()
    # Batches of 3 give the mean over all images, each its own gradient.
    slope = quality.planner_slope(planner, images, conditions, batch_size=3)
    norms = []
    for y, c in zip(images, conditions):
        y = tf.constant(y[None])
        with tf.GradientTape() as tape:
            tape.watch(y)
            total = tf.reduce_sum(planner(y, c[None]))
        norms.append(float(tf.norm(tape.gradient(total, y))))
    assert slope == pytest.approx(np.mean(norms), rel=1e-4)
    assert slope > 0
    # f is linear in the head's weights: tripling them triples the slope.
    planner.head.kernel.assign(3.0 * planner.head.kernel)
    assert quality.planner_slope(planner, images, conditions) == (
        pytest.approx(3.0 * slope, rel=1e-4))
