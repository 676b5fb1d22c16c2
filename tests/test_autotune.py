"""`auto` execution settings: the candidates, the choice, its cache."""

import json

import pytest

import tiny
from cooperative_tf import autotune, config_io, execution, tasks, train_lib

AVX2 = {"cpu": "test cpu", "cpu_flags": ["avx", "avx2", "fma"], "gpus": [],
        "tpus": 0, "tensorflow": "x", "keras": "y"}
AVX512_BF16 = dict(AVX2, cpu_flags=["avx", "avx2", "avx512f", "avx512_bf16"])
AUTO = ["train.jit_compile=auto", "langevin.unroll=auto"]


def tiny_mnist(*extra):
    return tasks.resolve_config("mnist", overrides=tiny.LABEL + AUTO
                                + list(extra))


class FakeTimer:
    """Stands in for `time_path`: set seconds per path name, counts calls."""

    def __init__(self, seconds=None, fail=()):
        self.seconds, self.fail, self.calls = seconds or {}, fail, []

    def __call__(self, config, path, strategy, steps):
        self.calls.append(path.name)
        if path.name in self.fail:
            raise ValueError(f"{path.name} cannot run here")
        s = self.seconds.get(path.name, 1.0)
        return {"first_s": 2 * s, "median_s": s, "times_s": [s] * steps}


def test_flags_and_config_files_take_auto_true_and_false():
    config = config_io.override(tasks.resolve_config("mnist"), [
        "train.jit_compile=false", "langevin.unroll=auto"])
    assert config.train.jit_compile is False
    assert config.langevin.unroll == "auto"
    again = config_io.from_json(config_io.to_json(config))
    assert again.train.jit_compile is False and again.langevin.unroll == "auto"
    with pytest.raises(ValueError, match="train.jit_compile"):
        config_io.override(tasks.resolve_config("mnist"),
                           ["train.jit_compile=sometimes"])
    with pytest.raises(ValueError, match="train.precision"):
        config_io.override(tasks.resolve_config("mnist"),
                           ["train.precision=fastest"])


def test_the_rule_is_the_old_default_and_keeps_explicit_settings():
    assert execution.by_rule(tiny_mnist()) == execution.ExecutionPath(
        True, True, "auto", "float32")
    # The chain is unrolled exactly when XLA compiles it.
    assert execution.by_rule(tiny_mnist("train.jit_compile=false")) == (
        execution.ExecutionPath(False, False, "auto", "float32"))
    assert execution.concrete(tiny_mnist()).train.jit_compile is True


def test_candidates_follow_the_hardware_and_keep_what_is_set():
    names = [p.name for p in autotune.candidates(tiny_mnist(), AVX2)]
    # `auto` convolutions: space-to-depth under XLA, direct in the graph.
    assert names == ["xla/unrolled", "xla/unrolled/direct_conv",
                     "graph/while_loop", "graph/unrolled"]
    # bfloat16 only where the CPU has bfloat16 instructions, and only when
    # the precision is auto.
    bf16 = autotune.candidates(tiny_mnist("train.precision=auto"),
                               AVX512_BF16)
    assert len(bf16) == 8
    assert {p.precision for p in bf16} == {"float32", "mixed_bfloat16"}
    assert {p.precision for p in autotune.candidates(
        tiny_mnist("train.precision=auto"), AVX2)} == {"float32"}
    assert {p.precision for p in autotune.candidates(
        tiny_mnist(), AVX512_BF16)} == {"float32"}
    forced = autotune.candidates(
        tiny_mnist("train.jit_compile=false", "langevin.unroll=true"), AVX2)
    assert [p.name for p in forced] == ["graph/unrolled"]
    # A baseline has no chain and no planner: only XLA or not.
    gan = autotune.candidates(tiny_mnist("method.name=cgan"), AVX2)
    assert [(p.jit_compile, p.conv_form) for p in gan] == [
        (True, "auto"), (False, "auto")]


def test_choose_takes_the_fastest_and_remembers_it(tmp_path, monkeypatch):
    monkeypatch.setattr(autotune, "machine", lambda: AVX2)
    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path / "cache"))
    timer = FakeTimer({"graph/while_loop": 0.5,
                       "xla/unrolled/direct_conv": 0.6},
                      fail=("xla/unrolled",))
    config, workdir = tiny_mnist(), str(tmp_path / "run")
    choice = autotune.choose(config, workdir=workdir, timer=timer)
    assert choice.source == "measured"
    assert choice.path.name == "graph/while_loop"
    assert choice.config.train.jit_compile is False
    assert choice.config.langevin.unroll is False
    assert "error" in choice.timings["xla/unrolled"]
    # The two within 1.25x of the fastest are timed three times more, in
    # turns; the path 2x slower is not.
    assert timer.calls[4:] == ["graph/while_loop", "xla/unrolled/direct_conv",
                               "xla/unrolled/direct_conv", "graph/while_loop",
                               "graph/while_loop", "xla/unrolled/direct_conv"]
    assert choice.timings["graph/while_loop"]["rounds"] == 4
    assert len(choice.timings["graph/while_loop"]["times_s"]) == 20
    saved = json.loads((tmp_path / "run" / "autotune.json").read_text())
    assert saved["name"] == choice.path.name
    assert saved["timings"]["xla/unrolled/direct_conv"]["median_s"] == 0.6
    # Resumed: the work directory's file, nothing timed again.
    again = autotune.choose(config, workdir=workdir, timer=timer)
    assert (again.source, again.path) == ("workdir", choice.path)
    # Another work directory on this machine: the cache.
    other = autotune.choose(config, workdir=str(tmp_path / "other"),
                            timer=timer)
    assert (other.source, other.path) == ("cache", choice.path)
    assert len(timer.calls) == 10
    # Other shapes are another key: timed afresh.
    bigger = autotune.choose(tiny_mnist("train.batch_size=8"),
                             workdir=str(tmp_path / "bigger"), timer=timer)
    assert bigger.source == "measured" and len(timer.calls) == 20
    # Another machine too.
    monkeypatch.setattr(autotune, "machine", lambda: AVX512_BF16)
    assert autotune.choose(config, timer=timer).source == "measured"


def test_cache_off_and_a_damaged_cache_are_measured_over(tmp_path,
                                                         monkeypatch):
    monkeypatch.setattr(autotune, "machine", lambda: AVX2)
    monkeypatch.setenv(autotune.CACHE_ENV, "off")
    assert autotune.cache_path() is None
    timer = FakeTimer()
    autotune.choose(tiny_mnist(), timer=timer)
    autotune.choose(tiny_mnist(), timer=timer)
    # Four candidates alike: each timed four times, both times.
    assert len(timer.calls) == 32
    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path))
    (tmp_path / autotune.CACHE_FILE).write_text("{not json")
    assert autotune.choose(tiny_mnist(), timer=timer).source == "measured"
    assert json.loads((tmp_path / autotune.CACHE_FILE).read_text())


class DriftingTimer:
    """A machine whose speed changes: call n's times are the path's own
    seconds times `factors[n]`."""

    def __init__(self, seconds, factors, fail=()):
        self.seconds, self.factors, self.calls = seconds, list(factors), []
        self.fail = fail

    def __call__(self, config, path, strategy, steps):
        factor = self.factors[len(self.calls)]
        self.calls.append(path.name)
        if (path.name, len(self.calls) - 1) in self.fail:
            raise MemoryError(f"{path.name} ran out of memory")
        s = self.seconds[path.name] * factor
        return {"first_s": 2 * s, "median_s": s, "times_s": [s] * steps}


GRAPH_PATHS = {"xla/unrolled": 3.0, "xla/unrolled/direct_conv": 3.0,
               "graph/while_loop": 1.0, "graph/unrolled": 1.0}


def test_close_candidates_timed_in_turns_outlast_a_slow_moment(monkeypatch):
    monkeypatch.setattr(autotune, "machine", lambda: AVX2)
    monkeypatch.setenv(autotune.CACHE_ENV, "off")
    # graph/while_loop is 10% faster than graph/unrolled, but its first
    # timing fell in a slow moment of the machine (x1.3): one pass would
    # pick graph/unrolled. The XLA paths are far slower: timed once.
    seconds = dict(GRAPH_PATHS, **{"graph/while_loop": 0.9})
    timer = DriftingTimer(seconds, [1.0, 1.0, 1.3] + [1.0] * 7)
    choice = autotune.choose(tiny_mnist(), timer=timer)
    assert timer.calls[4:] == ["graph/unrolled", "graph/while_loop",
                               "graph/while_loop", "graph/unrolled",
                               "graph/unrolled", "graph/while_loop"]
    assert choice.path.name == "graph/while_loop"
    # Its pooled median: 5 times at 1.17, 15 at 0.9.
    assert choice.timings["graph/while_loop"]["median_s"] == pytest.approx(0.9)
    assert "rounds" not in choice.timings["xla/unrolled"]
    # One pass only, as before, where no second candidate is close.
    lone = autotune.settle_close(
        tiny_mnist(), autotune.candidates(tiny_mnist(), AVX2),
        {"graph/while_loop": {"median_s": 1.0, "times_s": [1.0]},
         "graph/unrolled": {"median_s": 1.3, "times_s": [1.3]},
         "xla/unrolled": {"error": "x"}}, timer=timer)
    assert "rounds" not in lone["graph/while_loop"] and len(timer.calls) == 10


def test_the_turns_weigh_a_steady_drift_on_each_alike(monkeypatch):
    monkeypatch.setattr(autotune, "machine", lambda: AVX2)
    monkeypatch.setenv(autotune.CACHE_ENV, "off")
    # Two paths of one speed on a machine slowing 5% a call: the graph
    # paths' calls are 2, 5, 6, 9 and 3, 4, 7, 8, so their pooled medians
    # (and means) agree; in one order every turn they would not.
    timer = DriftingTimer(GRAPH_PATHS, [1 + 0.05 * n for n in range(10)])
    timings = autotune.choose(tiny_mnist(), timer=timer).timings
    medians = [timings[name]["median_s"]
               for name in ("graph/while_loop", "graph/unrolled")]
    assert medians[0] == pytest.approx(medians[1]) == pytest.approx(1.275)


def test_a_candidate_failing_when_timed_again_is_out_of_the_choice(
        monkeypatch):
    monkeypatch.setattr(autotune, "machine", lambda: AVX2)
    monkeypatch.setenv(autotune.CACHE_ENV, "off")
    # The fastest in the first pass runs out of memory in its second
    # timing (call 5): it must not be the path the run trains with.
    seconds = dict(GRAPH_PATHS, **{"graph/while_loop": 0.9})
    timer = DriftingTimer(seconds, [1.0] * 10,
                          fail=[("graph/while_loop", 5)])
    lines = []
    choice = autotune.choose(tiny_mnist(), timer=timer, log=lines.append)
    assert choice.path.name == "graph/unrolled"
    failed = choice.timings["graph/while_loop"]
    assert failed["error"].startswith("failed when timed again: MemoryError")
    assert failed["first_pass"]["median_s"] == pytest.approx(0.9)
    # Not timed after failing; the other one still is.
    assert timer.calls[4:] == ["graph/unrolled", "graph/while_loop",
                               "graph/unrolled", "graph/unrolled"]
    assert any("graph/while_loop: failed when timed again" in line
               for line in lines)


def test_every_candidate_failing_is_an_error_naming_them(monkeypatch):
    monkeypatch.setattr(autotune, "machine", lambda: AVX2)
    paths = [p.name for p in autotune.candidates(tiny_mnist(), AVX2)]
    with pytest.raises(RuntimeError, match="cannot run here.*jit_compile"):
        autotune.choose(tiny_mnist(), timer=FakeTimer(fail=paths))


def test_an_explicit_jit_setting_times_nothing():
    # The other `auto` settings then follow the rule (here the planner's
    # convolution form, XLA's space-to-depth).
    timer = FakeTimer()
    choice = autotune.choose(tiny_mnist("train.jit_compile=true",
                                        "train.precision=auto"),
                             timer=timer)
    assert choice.source == "rule" and not timer.calls
    assert choice.path == execution.ExecutionPath(True, True, "auto",
                                                  "float32")


def test_a_resumed_run_keeps_its_path_when_the_key_changes(tmp_path,
                                                           monkeypatch):
    monkeypatch.setattr(autotune, "machine", lambda: AVX512_BF16)
    workdir = str(tmp_path / "run")
    config = tiny_mnist("train.precision=auto")
    timer = FakeTimer({"graph/while_loop/mixed_bfloat16": 0.1})
    first = autotune.choose(config, workdir=workdir, timer=timer)
    assert first.path.precision == "mixed_bfloat16"
    # Resumed on another machine, with a longer run: the same path, so the
    # precision does not change mid-run; nothing timed.
    monkeypatch.setattr(autotune, "machine",
                        lambda: dict(AVX512_BF16, cpu="another cpu"))
    again = autotune.choose(tiny_mnist("train.precision=auto",
                                       "train.train_steps=5000"),
                            workdir=workdir, timer=FakeTimer())
    assert (again.source, again.path) == ("workdir", first.path)
    # Nothing left to train: nothing timed either.
    timer = FakeTimer()
    done = autotune.choose(config, timer=timer, steps_left=0)
    assert done.source == "rule" and not timer.calls


def test_a_cache_of_the_wrong_shape_is_measured_over(tmp_path, monkeypatch):
    monkeypatch.setattr(autotune, "machine", lambda: AVX2)
    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path))
    material = autotune.key_material(tiny_mnist(), 1, AVX2)
    key = autotune.cache_key(material)
    for bad in ([1, 2], {key: "not an entry"}, {key: {"choice": {}}}):
        (tmp_path / autotune.CACHE_FILE).write_text(json.dumps(bad))
        assert autotune.choose(tiny_mnist(),
                               timer=FakeTimer()).source == "measured"


def test_the_key_holds_the_environment_that_changes_kernels(monkeypatch):
    config = tiny_mnist()
    base = autotune.cache_key(autotune.key_material(config, 1, AVX2))
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert autotune.cache_key(autotune.key_material(config, 1, AVX2)) != base


@pytest.mark.parametrize("off, on, other", [
    ("train.gradient_penalty_weight=0", "train.gradient_penalty_weight=1e-6",
     "train.gradient_penalty_weight=3e-6"),
    ("train.policy_ema=0", "train.policy_ema=0.999", "train.policy_ema=0.99"),
    ("train.planner_ema=0", "train.planner_ema=0.99",
     "train.planner_ema=0.995"),
    ("train.reconstruction_weight=0", "train.reconstruction_weight=0.2",
     "train.reconstruction_weight=1"),
    ("langevin.reference_sigma=None", "langevin.reference_sigma=0.016",
     "langevin.reference_sigma=0.3"),
])
def test_the_key_holds_whether_a_term_runs_not_its_weight(off, on, other):
    # A term adds work to every step (the penalty a second differentiation,
    # the average an update), so a path timed without it does not answer
    # for a run with it; its weight changes no cost, so a sweep over
    # weights is timed once.
    def key(*overrides):
        return autotune.cache_key(autotune.key_material(
            tiny_mnist(*overrides), 1, AVX2))

    assert key(off) != key(on)
    assert key(on) == key(other)


def test_the_key_holds_the_long_run_chains_length_and_share():
    # Long-run chains cost their length times their rows in every step:
    # unlike a term's weight, both change what a path costs.
    def key(*overrides):
        return autotune.cache_key(autotune.key_material(
            tiny_mnist(*overrides), 1, AVX2))

    def on(*overrides):  # from step 0, the run's only stage
        return key("train.long_run_start=0", *overrides)

    off = key("train.long_run_steps=0")
    keys = {off, on("train.long_run_steps=40", "train.long_run_every=2"),
            on("train.long_run_steps=90", "train.long_run_every=2"),
            on("train.long_run_steps=90", "train.long_run_every=4")}
    assert len(keys) == 4
    # Off, its rows are not in the key (a run that never runs the chains);
    # nor are they where its longest stage has none, as in mnist's default
    # (its last 1,000 of 10,000 steps), which is timed without them.
    assert key("train.long_run_steps=0", "train.long_run_every=2") == off
    assert key() == off
    steps = tiny_mnist().train.train_steps
    assert key("train.long_run_steps=90", "train.long_run_every=2",
               f"train.long_run_start={steps // 2 + 1}") == off
    assert key("train.long_run_steps=90", "train.long_run_every=2",
               f"train.long_run_start={steps // 2}") == on(
                   "train.long_run_steps=90", "train.long_run_every=2")


@pytest.mark.parametrize("one, other, same", [
    ("langevin.step_size=0.002", "langevin.step_size=0.01", True),
    ("method.l1_weight=100", "method.l1_weight=10", True),
    ("method.discriminator_lr=2e-4", "method.discriminator_lr=1e-3", True),
    ("method.planner_only_step_size=0.01",
     "method.planner_only_step_size=0.02", True),
    ("langevin.steps=10", "langevin.steps=20", False),
    ("method.planner_only_steps=60", "method.planner_only_steps=30", False),
])
def test_a_number_that_changes_no_cost_is_not_in_the_key(one, other, same):
    keys = [autotune.cache_key(autotune.key_material(tiny_mnist(o), 1, AVX2))
            for o in (one, other)]
    assert (keys[0] == keys[1]) is same


def test_nothing_auto_means_nothing_timed():
    timer = FakeTimer()
    forced = ("train.jit_compile=false", "langevin.unroll=false")
    choice = autotune.choose(tiny_mnist(*forced,
                                        "model.planner_conv_form=direct"),
                             timer=timer)
    assert choice.source == "set"
    # The planner's convolution form alone is auto: one candidate outside
    # XLA, so the rule's.
    assert autotune.choose(tiny_mnist(*forced), timer=timer).source == "rule"
    assert not timer.calls


def test_a_label_stage_that_is_short_is_not_what_is_timed():
    config = tiny_mnist("train.label_loss_weight=1.0",
                        "train.label_loss_start=600", "train.train_steps=700")
    assert autotune.timed_label_weight(config) == 0.0
    config = tiny_mnist("train.label_loss_weight=1.0",
                        "train.label_loss_start=0")
    assert autotune.timed_label_weight(config) == 1.0


def test_a_held_policy_is_in_the_key_only_where_its_stage_is_timed():
    def key(*overrides):
        return autotune.cache_key(autotune.key_material(
            tiny_mnist("train.label_loss_weight=1.0", *overrides), 1, AVX2))

    # The longest stage holds the policy: its steps skip the policy's
    # update, so they are timed (and keyed) apart.
    long_stage = ("train.label_loss_start=100", "train.train_steps=700")
    assert autotune.timed_policy_held(tiny_mnist(
        "train.label_loss_weight=1.0", "train.label_stage_policy=hold",
        *long_stage))
    assert key("train.label_stage_policy=hold", *long_stage) != key(
        *long_stage)
    # A short held stage is not what is timed: the key stays.
    short_stage = ("train.label_loss_start=600", "train.train_steps=700")
    assert key("train.label_stage_policy=hold", *short_stage) == key(
        *short_stage)


@pytest.mark.slow
def test_a_run_with_auto_settings_times_the_real_paths_once(tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path / "cache"))
    lines = []
    # One XLA path and the two graph ones.
    config = tiny_mnist("train.train_steps=2",
                        "model.planner_conv_form=direct")
    workdir = str(tmp_path / "run")
    result = train_lib.train(config, workdir, verbose=False,
                             callbacks=[])
    assert result.step == 2
    saved = json.loads((tmp_path / "run" / "autotune.json").read_text())
    medians = {name: t["median_s"] for name, t in saved["timings"].items()}
    assert set(medians) == {"xla/unrolled/direct_conv",
                            "graph/while_loop/direct_conv",
                            "graph/unrolled/direct_conv"}
    assert all(m > 0 for m in medians.values())
    assert saved["name"] == min(medians, key=medians.get)
    # The written config keeps `auto`; the resumed run reads its choice.
    assert json.loads((tmp_path / "run" / "config.json").read_text())[
        "train"]["jit_compile"] == "auto"
    monkeypatch.setattr(train_lib, "_printer", lambda verbose: lines.append)
    train_lib.train(tiny_mnist("train.train_steps=3",
                               "model.planner_conv_form=direct"), workdir)
    assert any("from this work directory's autotune.json" in line
               for line in lines), lines


def test_a_multi_worker_run_takes_the_rule_not_a_cache(tmp_path,
                                                        monkeypatch):
    monkeypatch.setattr(autotune, "machine", lambda: AVX2)
    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path))
    timer = FakeTimer({"graph/while_loop": 0.1})
    assert autotune.choose(tiny_mnist(), timer=timer).path.name == (
        "graph/while_loop")
    # Each worker's machine has its own cache: none is read.
    monkeypatch.setattr(autotune, "is_multi_worker", lambda strategy: True)
    timer = FakeTimer()
    choice = autotune.choose(tiny_mnist(), timer=timer)
    assert (choice.source, choice.path) == (
        "rule", execution.by_rule(tiny_mnist()))
    assert not timer.calls
