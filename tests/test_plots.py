"""The test-time compute chart: drawn from an evaluation's rows, refused
with a message naming what is missing, and tied to the figures' checkpoint."""

import json

import numpy as np
import pytest
from PIL import Image

from cooperative_tf import figures, plots

pytest.importorskip("matplotlib")


def _rows(label_task=True):
    rows = []
    for steps, seconds in ((0, 1.0), (10, 4.0), (100, 30.0)):
        if label_task:
            row = {"conditional_accuracy_fast": 0.9,
                   "conditional_accuracy_refined": 0.9 + steps / 1e3,
                   "frechet_fast": 20.0, "frechet_refined": 20.0 - steps / 10}
        else:
            row = {"psnr_fast": 17.0, "psnr_refined": 17.0 - steps / 50,
                   "l1_fast": 0.2, "l1_refined": 0.2 + steps / 1e3}
        rows.append(dict(row, steps=steps, seconds=seconds))
    return rows[::-1]  # any order


def test_default_metrics_follow_the_task_kind():
    assert plots.default_metrics(_rows(True)) == ["conditional_accuracy",
                                                 "frechet"]
    assert plots.default_metrics(_rows(False)) == ["psnr", "l1"]


def test_chart_has_one_panel_per_metric(tmp_path):
    one = plots.refinement_chart(_rows(), str(tmp_path / "a" / "one.png"),
                                 ["frechet"])
    two = plots.refinement_chart(_rows(), str(tmp_path / "two.png"))
    w1, h1 = Image.open(one).size
    w2, h2 = Image.open(two).size
    assert h1 == h2 and w2 == pytest.approx(2 * w1, rel=0.02)
    five = plots.refinement_chart(
        [dict(r, psnr_fast=1.0, psnr_refined=1.0, ssim_fast=1.0,
              ssim_refined=1.0, l1_fast=1.0, l1_refined=1.0) for r in _rows()],
        str(tmp_path / "five.png"), ["conditional_accuracy", "frechet", "psnr",
                                     "ssim", "l1"])
    w5, h5 = Image.open(five).size  # two rows of three panels
    assert h5 == pytest.approx(2 * h1, rel=0.02)
    assert w5 == pytest.approx(3 * w1, rel=0.02)
    pixels = np.asarray(Image.open(two).convert("L"))
    assert pixels.std() > 10  # lines and text, not a blank canvas


def test_chart_names_what_it_lacks(tmp_path):
    with pytest.raises(ValueError, match="--refine_steps"):
        plots.refinement_chart([], str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="psnr"):
        plots.refinement_chart(_rows(True), str(tmp_path / "x.png"),
                               ["psnr"])
    assert not (tmp_path / "x.png").exists()


def test_figures_draw_the_chart_only_for_their_own_checkpoint(tmp_path):
    out = str(tmp_path / "figures")
    path, why = figures.write_refinement_chart(str(tmp_path), 600, out)
    assert path is None and "--refine_steps" in why
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(json.dumps({"step": 500.0, "versus_steps": _rows()}))
    path, why = figures.write_refinement_chart(str(tmp_path), 600, out)
    assert path is None and "step 500," in why
    eval_json.write_text(json.dumps({"step": 600.0}))
    path, why = figures.write_refinement_chart(str(tmp_path), 600, out)
    assert path is None and "no test-time compute rows" in why
    eval_json.write_text(json.dumps({"step": 600.0, "versus_steps": _rows()}))
    path, why = figures.write_refinement_chart(str(tmp_path), 600, out)
    assert why == "" and path.endswith(figures.REFINEMENT_CHART)
    assert Image.open(path).size[0] > 0
