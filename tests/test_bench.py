"""The speed benchmark runs and reports sane numbers (no timing asserts)."""

import dataclasses
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from bench import flops as bench_flops
from bench import latency
from bench import op_profile as bench_profile
from bench import report as bench_report
from bench import runner as bench
from bench.authors import AuthorsMnistIteration
from bench.workloads import Variant, time_calls

# x [2, 8, 8, 3] -> conv 3x3 stride 2 (4 ch) -> conv-transpose 4x4 stride 2
# (5 ch) -> flatten -> dense 7. Multiply-adds by hand:
CONV = 2 * 4 * 4 * 4 * (3 * 3 * 3)        # outputs x kernel taps x in ch
DECONV = 2 * 4 * 4 * 4 * (4 * 4 * 5)      # inputs x kernel taps x out ch
DENSE = 2 * (8 * 8 * 5) * 7               # batch x in x out
FORWARD_FLOPS = 2 * (CONV + DECONV + DENSE)


def _weights():
    rng = np.random.default_rng(0)
    return [tf.constant(rng.normal(size=s), tf.float32)
            for s in ((3, 3, 3, 4), (4, 4, 5, 4), (8 * 8 * 5, 7))]


def tiny_net(x, w1, w2, w3):
    h = tf.nn.conv2d(x, w1, strides=2, padding="SAME")
    h = tf.nn.conv2d_transpose(h, w2, [2, 8, 8, 5], strides=2,
                               padding="SAME")
    return tf.matmul(tf.reshape(h, [2, -1]), w3)


X = tf.TensorSpec([2, 8, 8, 3])


def test_flop_count_of_a_tiny_conv_net_matches_hand_count():
    w = _weights()
    graph = tf.function(lambda x: tiny_net(x, *w)).get_concrete_function(
        X).graph
    count = bench_flops.count_flops(graph)
    assert count.total == FORWARD_FLOPS
    assert count.by_op == {"Conv2D": 2 * CONV, "Conv2DBackpropInput":
                           2 * DECONV, "MatMul": 2 * DENSE}
    # TensorFlow's own profiler agrees on this flat, conv-and-matmul graph.
    assert bench_flops.tfprof_flops(graph) == FORWARD_FLOPS


def test_flop_count_prunes_unused_gradients_and_follows_calls_and_loops():
    w = _weights()

    def input_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            # Squared, so the gradient needs the forward pass.
            y = tf.reduce_sum(tf.square(tiny_net(x, *w)))
        # The tape also builds the filter gradients; nothing uses them.
        return tape.gradient(y, x)

    graph = tf.function(input_grad).get_concrete_function(X).graph
    # Forward, then each op's input gradient costs what its forward does.
    count = bench_flops.count_flops(graph)
    assert count.total == 2 * FORWARD_FLOPS
    assert "Conv2DBackpropFilter" not in count.by_op

    inner = tf.function(lambda x: tiny_net(x, *w))

    def looped(x):
        def body(i, acc):
            return i + 1, acc + tf.reduce_sum(inner(x))
        return tf.while_loop(lambda i, _: i < 3, body, (0, 0.0))[1]

    graph = tf.function(looped).get_concrete_function(X).graph
    assert bench_flops.count_flops(
        graph, loop_iterations=3).total == 3 * FORWARD_FLOPS
    with pytest.raises(ValueError, match="loop_iterations"):
        bench_flops.count_flops(graph)


def test_authors_baseline_runs_one_iteration():
    baseline = AuthorsMnistIteration(image_size=28, batch_size=4,
                                     langevin_steps=2)
    try:
        losses = baseline.run_iteration()
        assert set(losses) == {"descriptor_loss", "generator_loss", "mse"}
        assert all(math.isfinite(v) for v in losses.values())
        counts = {name: bench_flops.count_flops(
            baseline.graph, fetches, loop_iterations=2, batch_size=4).total
            for name, fetches, _ in baseline.fetches()}
        # The generator by hand: 1x1 -> 4x4 -> 7x7 -> 14x14 -> 28x28.
        generator = 2 * 4 * (1 * 50 * 16 * 256 + 16 * 256 * 16 * 128
                             + 49 * 128 * 16 * 64 + 196 * 64 * 16 * 1)
        assert counts["generator"] == generator
        assert counts["langevin"] > 0 and counts["mse"] == 0
        assert counts["descriptor_update"] > counts["generator_update"]
    finally:
        baseline.close()


def _tiny_settings():
    quick = bench.Settings.quick()
    graph = (Variant("graph", True), Variant("graph", False))
    # No XLA compile: `auto` then takes the rule's path, marked as picked.
    no_xla = ("train.jit_compile=false",)
    return dataclasses.replace(
        quick, mnist_variants=graph, batch_sweep=(4,),
        batch_variants=(Variant("graph", True),), authors_batch=4,
        image_variants=(Variant("graph", True),),
        mnist_overrides=quick.mnist_overrides + no_xla,
        image_overrides=quick.image_overrides + no_xla)


def _check_timing(timing):
    for key in ("first_s", "median_s", "min_s"):
        assert math.isfinite(timing[key]) and timing[key] > 0, (key, timing)
    assert timing["images_per_s"] > 0
    assert timing["peak_rss_mb"] > 0


def test_quick_benchmark_report_structure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = _tiny_settings()
    out = tmp_path / "bench.json"
    results = bench.run(["peak", "mnist", "authors", "memory"], settings,
                        str(out))
    assert out.exists()
    saved = json.loads(out.read_text())
    assert set(saved) >= {"meta", "peak", "mnist", "authors", "memory",
                          "headline", "fastest"}
    assert saved["headline"] == {}  # only for the real shapes
    assert saved["meta"]["tensorflow"] == tf.__version__
    assert saved["meta"]["machine"]["cpu"]
    assert saved["peak"]["float32"]["gflops_per_s"] > 0

    mnist = results["mnist"]
    assert mnist["flops_g"]["step"] > mnist["flops_g"]["langevin"] > 0
    assert mnist["flops_g"]["planner_update"] > 0
    assert sorted(r["variant"] for r in mnist["variants"]) == [
        "graph/unrolled", "graph/while_loop"]
    # What `auto` picked is marked, against the fastest of the same rounds.
    auto = mnist["auto"]
    (picked,) = [r for r in mnist["variants"] if r.get("auto")]
    assert picked["variant"] == auto["variant"]
    timed = {r["variant"]: r["step"]["median_s"] for r in mnist["variants"]}
    assert auto["fastest"] == min(timed, key=timed.get)
    assert auto["over_fastest"] == pytest.approx(
        timed[auto["variant"]] / min(timed.values()))
    # With the XLA setting forced, nothing is timed: the rule's path (the
    # chain as a loop outside XLA). Timing itself: tests/test_autotune.py.
    assert (auto["source"], auto["choose_step_s"]) == ("rule", {})
    assert auto["variant"] == "graph/while_loop"
    # The default run's two stages, without and with the label term, and
    # the step with the gradient penalty.
    assert [r["stage"] for r in mnist["label_stage"]] == [
        "paper loss", "label term", "gradient penalty", "long run negatives"]
    assert all(r["step"]["median_s"] > 0 for r in mnist["label_stage"])
    for row in mnist["variants"]:
        for part in ("step", "solver", "fast", "refined"):
            _check_timing(row[part])
        assert row["step"]["gflops_per_s"] > 0
    # The same maths in both loop forms: the same FLOPs.
    assert results["fastest"]["mnist/step"]["variant"] in (
        "graph/unrolled", "graph/while_loop")

    # The authors' code, ours and the matmul, timed in turn.
    versus = results["authors"]
    (authors,) = versus["rows"]
    assert authors["variant"] == "tf1/while_loop"
    assert authors["step"]["median_s"] > 0 and authors["over_ours"] > 0
    assert authors["flops_g"]["step"] > authors["flops_g"]["langevin"] > 0
    assert versus["ours"]["step"]["gflops_per_s"] > 0
    assert 0 < versus["ours"]["solver"]["pct_of_matmul_peak"]
    assert versus["matmul_gflops_per_s"] > 0

    assert results["memory"]["steps"] == settings.memory_steps
    assert results["memory"]["rss_after_2n_mb"] > 0

    table = bench.format_table(results)
    assert "| mnist@32 | graph/unrolled" in table
    assert f"| mnist@32 | {auto['variant']} **(auto)** |" in table
    assert "machine: " in table
    assert "authors TF1 @28 interleaved" in table


def test_headline_gives_each_stage_step_over_the_paper_step():
    # The authors' head-to-head gives the step time; the label-stage rows
    # give the two ratios, by name whatever their order.
    step = {"median_s": 2.0, "pct_of_matmul_peak": 10.0}
    results = {
        "authors": {"ours": {"variant": "xla/unrolled", "step": step,
                             "solver": step}},
        "mnist": {"label_stage": [
            {"stage": "gradient penalty", "step": {"median_s": 0.6}},
            {"stage": "paper loss", "step": {"median_s": 0.5}},
            {"stage": "label term", "step": {"median_s": 1.0}},
            {"stage": "long run negatives", "step": {"median_s": 0.8}}]}}
    got = bench_report.headline(results)
    assert got["label_term_step_over_paper_step"]["value"] == pytest.approx(
        2.0)
    assert got["gradient_penalty_step_over_paper_step"][
        "value"] == pytest.approx(1.2)
    assert got["long_run_negatives_step_over_paper_step"][
        "value"] == pytest.approx(1.6)
    # A stage that failed to time gives no ratio.
    results["mnist"]["label_stage"][0]["step"] = {"error": "boom"}
    assert "gradient_penalty_step_over_paper_step" not in (
        bench_report.headline(results))


def test_batch_image_and_pipeline_sections_report():
    settings = _tiny_settings()
    results = bench.run(["batch", "image", "pipeline"], settings, out=None)
    (row,) = results["batch"]["rows"]
    assert row["batch"] == 4 and row["flops_g"] > 0
    _check_timing(row["step"])
    (image,) = results["image"].values()
    assert image["image_size"] == 16
    _check_timing(image["variants"][0]["step"])
    assert "zappos@16/step" in results["fastest"]
    pipeline = results["pipeline"]
    for key in ("first_epoch_examples_per_s", "cached_examples_per_s",
                "step_examples_per_s", "mnist_examples_per_s"):
        assert pipeline[key] > 0, key
    assert pipeline["step_s_from_pipeline"] > 0


def test_mixed_precision_section_times_float32_and_bfloat16_side_by_side():
    settings = dataclasses.replace(_tiny_settings(), precision_batch=4)
    results = bench.run(["precision"], settings, out=None)
    rows = results["precision"]["trainer"]
    assert [r["variant"] for r in rows] == [
        settings.mnist_variants[0].name, "graph/unrolled/mixed_bfloat16",
        "xla/unrolled/mixed_bfloat16"]
    for row in rows:  # the trainer runs under mixed precision
        assert "error" not in row
        assert row["step"]["median_s"] > 0 and row["refined"]["median_s"] > 0
    probe = results["precision"]["value_and_grad_probe"]
    assert {p["dtype"] for p in probe} == {"float32", "bfloat16"}
    assert all(p["median_s"] > 0 for p in probe)


# Kernel names TensorFlow gives an op on different builds and CPUs (oneDNN
# on AVX-512 machines, the graph remapper's fusions) and XLA's HLO names.
KERNELS = {
    "Conv2D": ("Conv2D", "_FusedConv2D", "_MklConv2D", "_MklNativeConv2D",
               "_MklFusedConv2D", "_MklNativeFusedConv2D",
               "_MklConv2DWithBias", "_MklNativeConv2DWithBias",
               "model/conv_1/Conv2D:_MklNativeConv2D"),
    "Conv2DBackpropInput": ("Conv2DBackpropInput", "Conv2DBackpropInputV2",
                            "_MklConv2DBackpropInput",
                            "_MklNativeConv2DBackpropInput",
                            "grad/Conv2DBackpropInput_1:"
                            "_MklNativeConv2DBackpropInput"),
    "Conv2DBackpropFilter": ("Conv2DBackpropFilter",
                             "_MklNativeConv2DBackpropFilter",
                             "_MklConv2DBackpropFilterWithBias"),
    "DepthwiseConv2dNative": ("DepthwiseConv2dNative",
                              "_MklDepthwiseConv2dNative",
                              "_MklNativeDepthwiseConv2dNative",
                              "_FusedDepthwiseConv2dNative",
                              "_MklNativeFusedDepthwiseConv2dNative"),
    "MatMul": ("MatMul", "MatMul_1", "_MklMatMul", "_MklNativeMatMul",
               "_FusedMatMul", "_MklFusedMatMul", "_MklNativeFusedMatMul",
               "dense/MatMul:_MklMatMul"),
    "BatchMatMul": ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3",
                    "_MklBatchMatMulV2", "_MklFusedBatchMatMulV2"),
    "Transpose": ("Transpose", "_MklTranspose"),
    "Add": ("AddV2", "_MklAddV2", "_MklAdd"),
    "FusedBatchNorm": ("FusedBatchNormV3", "_MklFusedBatchNormV3",
                       "_MklNativeFusedBatchNormV3"),
}
FAMILIES = {
    "Conv2D": "conv: forward", "DepthwiseConv2dNative": "conv: forward",
    "Conv2DBackpropInput": "conv: transposed / input grad",
    "Conv2DBackpropFilter": "conv: filter grad", "MatMul": "matmul",
    "BatchMatMul": "matmul", "Transpose": "copy / transpose",
    "Add": "element-wise / other", "FusedBatchNorm": "element-wise / other",
    # XLA's names.
    "convolution.3": "conv: forward",
    "convolution-base-dilated.12": "conv: transposed / input grad",
    "convolution-window-dilated": "conv: filter grad",
    "wrapped_convolution.1": "conv: forward", "dot.5": "matmul",
    "convert.2": "element-wise / other",
    "add_convert_fusion.1": "element-wise / other",
    "multiply_select_fusion.12": "element-wise / other",
    "copy.4": "copy / transpose", "transpose.1": "copy / transpose",
    # oneDNN layout conversions and the runtime's own events.
    "_MklToTf": "copy / transpose", "_MklInputConversion": "copy / transpose",
    "ExecutorState::Process": "runtime overhead",
    "ThunkExecutor::Execute": "runtime overhead",
}


def test_every_kernel_name_of_an_op_maps_to_it_and_its_family():
    for op, kernels in KERNELS.items():
        for kernel in kernels:
            assert bench_profile.canonical_op(kernel) == op, kernel
            assert bench_profile.op_family(kernel) == FAMILIES[op], kernel
    for name, family in FAMILIES.items():
        assert bench_profile.op_family(name) == family, name
        assert family in bench_profile.FAMILIES


def test_profile_breakdown_reads_the_trace():
    # Only what holds whatever kernels this CPU and build run: which ones
    # ran is reported, and each is grouped under its op.
    w = _weights()
    net = tf.function(lambda x: tf.reduce_sum(tiny_net(x, *w)))
    x = tf.random.normal([2, 8, 8, 3])
    float(net(x))
    report = bench_profile.op_time_breakdown(lambda: float(net(x)), steps=2,
                                             top=100)
    assert report["wall_s"] > 0 and report["busy_s"] > 0
    assert math.isclose(sum(report["families"].values()), 1.0, rel_tol=1e-6)
    assert set(report["families"]) <= set(bench_profile.FAMILIES)
    assert report["top_ops"] and all(
        seconds >= 0 and 0 <= share <= 1 for _, seconds, share in
        report["top_ops"])
    ops = [op for op, _, _ in report["top_ops"]]
    assert sorted(report["kernels"]) == sorted(ops)
    for op, kernels in report["kernels"].items():
        assert kernels and all(
            bench_profile.canonical_op(k) == op for k in kernels), (op, kernels)


def test_time_calls_reports_first_call_apart():
    calls = []
    timing = time_calls(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 6 and len(timing["times_s"]) == 3
    assert timing["median_s"] >= 0 and timing["peak_rss_mb"] > 0


def test_cli_writes_json_and_rejects_unknown_sections(tmp_path, capsys):
    out = tmp_path / "peak.json"
    assert bench.main(["--quick", "--only=peak", f"--out={out}"]) == 0
    assert json.loads(out.read_text())["peak"]["float32"]["size"] == 256
    assert "matmul peak" in capsys.readouterr().out
    assert bench.main(["--quick", "--only=nope", "--out="]) == 2
    assert "Unknown section" in capsys.readouterr().err


def test_measure_latency_reports_each_setting(tmp_path_factory):
    from tiny import MNIST, export_tiny

    _, _, path = export_tiny("mnist", MNIST, tmp_path_factory)
    timings = latency.measure_latency(path, steps=(0, 2), calls=2, warmup=1)
    assert sorted(timings) == ["refine@0", "refine@2", "serving_default"]
    assert all(v > 0 for v in timings.values())
