"""Preprocessing ops: values, determinism, and eager == inside Dataset.map."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import shared_data
from pipelines import edges, masks, ops


def _example(size=12, channels=3, seed=(7, 3), label=4):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, [size, size, channels], dtype=np.uint8)
    return {"target": tf.constant(image),
            "condition": tf.constant(image[::-1].copy()),
            "label": tf.constant(label, tf.int64),
            ops.SEED_KEY: tf.constant(seed, tf.int64)}


def _in_map(op, features):
    """Runs `op` inside Dataset.map (graph mode) on one example."""
    dataset = tf.data.Dataset.from_tensors(features).map(op)
    return next(iter(dataset))


OPS = {
    "to_float": (ops.to_float(), {}),
    "to_uint8": (ops.compose([ops.to_float(), ops.to_uint8()]), {}),
    "to_grey": (ops.to_channels(1, ["target", "condition"]), {}),
    "to_rgb": (ops.to_channels(3), {"channels": 1}),
    "resize": (ops.resize(20), {}),
    "pad_to": (ops.pad_to(16), {}),
    "pad_to_square": (ops.pad_to_square(), {}),
    "one_hot": (ops.one_hot_label(10), {}),
    "edge_map": (ops.edge_map(3, detect_size=None), {"size": 24}),
    "edge_map_sized": (ops.edge_map(1, size=16, detect_size=64), {}),
    "jitter": (ops.compose([ops.to_float(),
                            ops.random_jitter(8, 12, True)]), {}),
    "mask_center": (ops.compose([ops.to_float(),
                                 ops.masked_condition("center", 4)]), {}),
    "mask_rect": (ops.compose([ops.to_float(),
                               ops.masked_condition("random_rect", 6)]), {}),
    "mask_free": (ops.compose([ops.to_float(),
                               ops.masked_condition("free_form", 6)]), {}),
    "keep": (ops.keep(["target"]), {}),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_eager_equals_dataset_map(name):
    op, kwargs = OPS[name]
    features = _example(**kwargs)
    eager = op(features)
    mapped = _in_map(op, features)
    assert sorted(eager) == sorted(mapped)
    for key in eager:
        assert eager[key].dtype == mapped[key].dtype, key
        np.testing.assert_allclose(eager[key].numpy(), mapped[key].numpy(),
                                   atol=1e-5, err_msg=key)


def test_to_float_range_and_round_trip():
    features = {"target": tf.constant([[[0], [128], [255]]], tf.uint8)}
    floats = ops.to_float()(features)["target"]
    assert floats.dtype == tf.float32
    np.testing.assert_allclose(floats.numpy().ravel(), [-1, 128 / 127.5 - 1, 1],
                               atol=1e-6)
    back = ops.to_uint8()({"target": floats})["target"]
    np.testing.assert_array_equal(back.numpy(), features["target"].numpy())


def test_to_channels_grey_rgb_and_alpha():
    rgba = tf.constant(np.full([2, 2, 4], 200, np.uint8))
    rgb = ops.to_channels(3)({"target": rgba})["target"]
    assert rgb.shape == (2, 2, 3)
    grey = ops.to_channels(1)({"target": rgb})["target"]
    assert grey.shape == (2, 2, 1) and grey.dtype == tf.uint8
    assert int(grey[0, 0, 0]) == 200  # equal channels stay the same grey
    with pytest.raises(ValueError, match="Received: channels=2"):
        ops.to_channels(2)


def test_one_hot_matches_label():
    for label in range(10):
        out = ops.one_hot_label(10)({"label": tf.constant(label)})["condition"]
        assert out.dtype == tf.float32 and out.shape == (10,)
        assert int(tf.argmax(out)) == label and float(tf.reduce_sum(out)) == 1
    with pytest.raises(tf.errors.InvalidArgumentError):
        ops.one_hot_label(10)({"label": tf.constant(10)})


def test_pad_to_centres_and_pad_to_square_is_white():
    padded = ops.pad_to(32)({"target": tf.ones([28, 28, 1], tf.uint8)})
    image = padded["target"].numpy()[..., 0]
    assert image.shape == (32, 32)
    assert image[2:30, 2:30].all() and image.sum() == 28 * 28
    square = ops.pad_to_square()({"target": tf.zeros([2, 6, 3], tf.uint8)})
    image = square["target"].numpy()
    assert image.shape == (6, 6, 3)
    assert (image[:2] == 255).all() and (image[2:4] == 0).all()


def test_jitter_same_crop_and_flip_on_condition_and_target():
    rng = np.random.default_rng(1)
    image = tf.constant(rng.uniform(-1, 1, [12, 12, 3]), tf.float32)
    jitter = ops.random_jitter(8, 12, True)
    flips = set()
    for index in range(16):
        out = jitter({"condition": image, "target": image,
                      ops.SEED_KEY: tf.constant([0, index], tf.int64)})
        assert out["target"].shape == (8, 8, 3)
        np.testing.assert_array_equal(out["condition"], out["target"])
        # The crop is a window of the original, maybe mirrored.
        found = None
        for top in range(5):
            for left in range(5):
                window = image[top:top + 8, left:left + 8].numpy()
                if np.array_equal(window, out["target"].numpy()):
                    found = "plain"
                elif np.array_equal(window[:, ::-1], out["target"].numpy()):
                    found = "flipped"
        assert found is not None
        flips.add(found)
    assert flips == {"plain", "flipped"}


def test_jitter_leaves_a_label_condition_alone():
    out = ops.random_jitter(8, 12, True)({
        "condition": tf.one_hot(3, 10), "target": tf.zeros([12, 12, 1]),
        ops.SEED_KEY: tf.constant([0, 0], tf.int64)})
    assert out["condition"].shape == (10,) and out["target"].shape == (8, 8, 1)


def test_random_ops_are_deterministic_under_the_seed():
    features = ops.to_float()(_example(size=16))
    op = ops.compose([ops.random_jitter(12, 16, True),
                      ops.masked_condition("free_form", 6)])
    first = op(dict(features))
    again = op(dict(features))
    np.testing.assert_array_equal(first["condition"], again["condition"])
    features[ops.SEED_KEY] = tf.constant([7, 4], tf.int64)
    other = op(features)
    assert not np.array_equal(first["condition"], other["condition"])


def test_random_ops_need_a_seed():
    with pytest.raises(ValueError, match="seed"):
        ops.random_jitter(8, 12, True)({"target": tf.zeros([12, 12, 3])})


def test_center_mask_geometry_and_condition_channels():
    hole = masks.center_hole(16, 8).numpy()[..., 0]
    assert hole.sum() == 64 and hole[4:12, 4:12].all()
    photo = tf.fill([16, 16, 3], 0.5)
    out = ops.masked_condition("center", 8)({"target": photo})["condition"]
    assert out.shape == (16, 16, 4)
    out = out.numpy()
    assert (out[4:12, 4:12, :3] == 0).all() and (out[4:12, 4:12, 3] == 1).all()
    assert (out[0, 0, :3] == 0.5).all() and out[0, 0, 3] == -1


@pytest.mark.parametrize("kind", ["random_rect", "free_form"])
def test_random_masks_vary_with_seed_and_stay_in_bounds(kind):
    holes = [masks.make_hole(kind, 32, 12, tf.constant([1, i], tf.int64))
             for i in range(6)]
    areas = [float(tf.reduce_sum(h)) for h in holes]
    assert all(0 < a < 32 * 32 for a in areas)
    assert len({round(a) for a in areas}) > 1
    again = masks.make_hole(kind, 32, 12, tf.constant([1, 0], tf.int64))
    np.testing.assert_array_equal(holes[0], again)
    if kind == "random_rect":
        for hole in holes:
            rows = np.flatnonzero(hole.numpy()[..., 0].any(axis=1))
            cols = np.flatnonzero(hole.numpy()[..., 0].any(axis=0))
            assert 6 <= len(rows) <= 12 and 6 <= len(cols) <= 12
            assert hole.numpy().sum() == len(rows) * len(cols)


def test_mask_errors_name_the_field():
    with pytest.raises(ValueError, match="Received: data.mask='blob'"):
        masks.make_hole("blob", 16, 8, None)
    with pytest.raises(ValueError, match="Received: data.mask_size=20"):
        masks.make_hole("center", 16, 20, None)


def test_edge_map_of_a_square_is_its_outline():
    photo = np.ones([64, 64, 3], np.float32)
    photo[16:48, 16:48] = -1.0  # A black square on white.
    edge = edges.edge_map(tf.constant(photo), 1, sigma=1.0).numpy()[..., 0]
    assert set(np.unique(edge)) <= {-1.0, 1.0}
    lines = edge < 0
    assert lines[:8].sum() == 0 and lines[24:40, 24:40].sum() == 0
    # The outline runs all around the square: every side has line pixels.
    assert lines[14:18, 20:44].any() and lines[46:50, 20:44].any()
    assert lines[20:44, 14:18].any() and lines[20:44, 46:50].any()
    # Thin: about one pixel across, so roughly the perimeter in count.
    assert 0.5 * 4 * 32 < lines.sum() < 2.5 * 4 * 32


def test_edge_map_of_a_flat_image_is_white():
    for value in (-1.0, 0.2, 1.0):
        out = edges.edge_map(tf.fill([32, 32, 3], value), 3)
        assert float(tf.reduce_min(out)) == 1.0


def test_edge_map_shrinks_keeping_lines_dark():
    photo = np.ones([1, 128, 128, 3], np.float32)
    photo[:, 32:96, 32:96] = -1.0
    small = edges.edge_map(tf.constant(photo), 1, size=32).numpy()
    assert small.shape == (1, 32, 32, 1)
    assert small.min() == -1.0  # a line still reaches black at 1/4 size


def _shoe_pairs(count):
    folder = shared_data("edges2shoes", "train")
    pairs = [np.asarray(Image.open(p).convert("RGB"))
             for p in sorted(folder.glob("*_AB.jpg"))[:count]]
    pairs = np.stack(pairs)
    return pairs[:, :, 256:], pairs[:, :, :256]  # photo, real edge map


def test_edge_map_resembles_pix2pix_edges_on_real_shoes():
    photos, real = _shoe_pairs(24)
    ours = edges.edge_map(tf.constant(photos, tf.float32) / 127.5 - 1.0, 1)
    ours_dark = ours.numpy()[..., 0] < 0
    real_dark = real.mean(axis=-1) < 128
    # Dark-pixel fraction: HED maps mark ~2.4% of the pixels; ours should
    # be within a factor of 1.5 either way.
    ratio = ours_dark.mean() / real_dark.mean()
    assert 0.67 < ratio < 1.5, ratio
    # Coincidence: our line pixels fall within 2 px of a real line far more
    # often than random pixels do.
    near_real = tf.nn.max_pool2d(
        tf.constant(real_dark[..., None], tf.float32), 5, 1, "SAME"
    ).numpy()[..., 0] > 0
    precision = (ours_dark & near_real).sum() / ours_dark.sum()
    chance = near_real.mean()
    assert precision > 0.7 and precision > 3 * chance, (precision, chance)
