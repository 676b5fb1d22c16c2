"""The diagnostic tools under `tools/`: what they change, and that they
leave the library's own numbers where the docs say they do."""

import json

import numpy as np
import pytest

import tiny
from cooperative_tf import eval_lib, factory, tasks, train_lib
from cooperative_tf import workdir as workdir_lib
from tools import latent_scale


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
    again = trainer.generate(labels, seed=5)
    np.testing.assert_array_equal(again["noise"], plain["noise"])
    np.testing.assert_array_equal(again["fast"], plain["fast"])
    with pytest.raises(ValueError, match="must be > 0"):
        with latent_scale.scaled_latent(trainer, 0.0):
            pass


@pytest.mark.slow
def test_latent_scale_at_one_gives_the_evaluations_parzen(tmp_path, capsys):
    import pipelines

    # The mnist sample the package ships; two steps of the tiny networks.
    config = tasks.resolve_config("mnist", train_steps=2,
                                  overrides=tiny.LABEL)
    train_lib.train(config, str(tmp_path), verbose=False)
    latent_scale.main([f"--workdir={tmp_path}", "--scales=1,0.5",
                       "--samples=40"])
    rows = [json.loads(line) for line in
            capsys.readouterr().out.strip().splitlines()]
    assert [row["scale"] for row in rows] == [1.0, 0.5]
    assert all(row["checkpoint"].endswith("ckpt-2") for row in rows)
    trainer = factory.build_trainer(config)
    workdir_lib.restore(trainer, str(tmp_path), required=True)
    d = config.data
    expected = eval_lib.parzen_scores(
        trainer, config, pipelines.build_dataset(
            d, d.eval_split, config.train.batch_size, training=False,
            repeat=False), 40)
    for kind in ("fast", "refined", "real"):
        assert rows[0][f"parzen_ll_{kind}"] == pytest.approx(
            expected[f"parzen_ll_{kind}"], rel=1e-6)
    # Other X, other answers; the real digits' reference does not move.
    assert rows[1]["parzen_ll_fast"] != rows[0]["parzen_ll_fast"]
    assert rows[1]["parzen_ll_real"] == rows[0]["parzen_ll_real"]
