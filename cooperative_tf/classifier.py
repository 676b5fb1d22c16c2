"""A small classifier of the task's own data, the judge of label tasks.

Conditional accuracy (is a generated 7 read as a 7?) and a Frechet distance
in a feature space need a classifier. Inception weights cannot be downloaded
here, so each label task trains its own on its training split, once, and
keeps it in the work directory (`classifier/`); its accuracy on the held-out
split is reported beside every score it gives, as the ceiling real data
reaches.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Tuple

import keras
import numpy as np
import tensorflow as tf
from keras import layers

CLASSIFIER_DIR = "classifier"
_MODEL_FILE = "classifier.keras"
_INFO_FILE = "classifier.json"
# Bumped whenever `train_classifier` would train another judge from the same
# data, so that a cached judge of an older recipe is trained again and all
# runs on the same data are read by the same judge. 2: repeatable, float32.
_RECIPE = 2


@keras.saving.register_keras_serializable(package="cooperative_tf")
class FeatureClassifier(keras.Model):
    """A CNN that labels images and exposes its penultimate features.

    Three 3x3 convolutions with ReLU (the last two with stride 2), a
    `feature_dim` dense layer on their flattened output (the feature space
    of the Frechet distance), dropout and the logits. No batch norm: its
    moving statistics would lag behind a short training run. float32 by
    default, whatever the global dtype policy.

    Args:
      num_classes: Number of labels.
      filters: Channels of the three convolution blocks.
      feature_dim: Width of the feature layer.
      dropout: Dropout rate before the logits, in training.

    Shapes:
      images: `[batch, H, W, C]` in [-1, 1].
      Returns logits `[batch, num_classes]`; `features` returns
      `[batch, feature_dim]`.
    """

    def __init__(self, num_classes=10, filters=(32, 64, 128), feature_dim=128,
                 dropout=0.3, **kwargs):
        # float32 unless told: a mixed policy set by the caller would make
        # the judge depend on the execution path of the run it scores.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.filters = tuple(filters)
        self.feature_dim = feature_dim
        self.dropout = dropout
        self.blocks = [
            layers.Conv2D(width, 3, strides=1 if i == 0 else 2,
                          padding="same", activation="relu",
                          kernel_initializer="he_normal", name=f"conv_{i}",
                          dtype=self.dtype_policy)
            for i, width in enumerate(self.filters)]
        # The layers take the model's policy, not the global one: a judge
        # loaded while a run's mixed policy is set stays float32.
        self.flatten = layers.Flatten(name="flatten", dtype=self.dtype_policy)
        self.feature = layers.Dense(feature_dim, activation="relu",
                                    name="feature", dtype=self.dtype_policy)
        self.drop = layers.Dropout(dropout, name="dropout",
                                   dtype=self.dtype_policy)
        self.logits = layers.Dense(num_classes, name="logits",
                                   dtype=self.dtype_policy)

    def features(self, images, training=False):
        x = tf.cast(images, self.compute_dtype)
        for layer in self.blocks:
            x = layer(x)
        return self.feature(self.flatten(x))

    def call(self, images, training=False):
        return self.logits(self.drop(self.features(images, training),
                                     training=training))

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes,
                      filters=list(self.filters),
                      feature_dim=self.feature_dim, dropout=self.dropout)
        return config


def load_split(data, split: str, batch_size: int = 256
               ) -> Tuple[np.ndarray, np.ndarray]:
    """All images `[n, H, W, C]` in [-1, 1] and int labels `[n]` of a split
    of a label task, in file order."""
    import pipelines
    images, labels = [], []
    for batch in pipelines.build_dataset(data, split, batch_size,
                                         training=False, repeat=False):
        images.append(batch["target"].numpy())
        labels.append(np.argmax(batch["condition"].numpy(), axis=-1))
    if not images:
        raise ValueError(f"Split {split!r} of {data.data_dir or 'the sample'}"
                         " has no examples to train or test a classifier on."
                         f" Received: split={split!r}")
    return np.concatenate(images), np.concatenate(labels)


def _logits_and_features(classifier: FeatureClassifier, images,
                         batch_size: int):
    """Yields `(logits, features)` as numpy arrays, `batch_size` images at a
    time, so that long sample sets never sit in one graph call."""
    for start in range(0, len(images), batch_size):
        chunk = tf.convert_to_tensor(images[start:start + batch_size])
        feats = classifier.features(chunk, training=False)
        yield classifier.logits(feats).numpy(), feats.numpy()


def predict(classifier: FeatureClassifier, images,
            batch_size: int = 500) -> Tuple[np.ndarray, np.ndarray]:
    """Predicted labels `[n]` and features `[n, feature_dim]` of images."""
    labels, features = [], []
    for logits, feats in _logits_and_features(classifier, images,
                                              batch_size):
        labels.append(np.argmax(logits, axis=-1))
        features.append(feats)
    return np.concatenate(labels), np.concatenate(features)


def probabilities(classifier: FeatureClassifier, images,
                  batch_size: int = 500) -> np.ndarray:
    """Class probabilities `[n, num_classes]` (rows sum to 1) of images
    `[n, H, W, C]` in [-1, 1]."""
    return np.concatenate([
        tf.nn.softmax(logits).numpy()
        for logits, _ in _logits_and_features(classifier, images,
                                               batch_size)])


def _folder(path: Optional[str]) -> Optional[str]:
    # One folder has many spellings (`../shared/data/mnist`, its absolute
    # path, a symlink): each would otherwise train its own judge, and runs
    # on the same data would be scored by different judges.
    return os.path.realpath(os.path.expanduser(path)) if path else path


def _fingerprint(data) -> dict:
    return {"reader": data.reader, "data_dir": _folder(data.data_dir),
            "image_size": data.image_size, "channels": data.channels,
            "num_classes": data.num_classes, "train_split": data.train_split,
            "eval_split": data.eval_split, "recipe": _RECIPE}


def train_classifier(data, epochs: int = 12, batch_size: int = 128,
                     seed: int = 0, verbose: bool = False
                     ) -> Tuple[FeatureClassifier, float]:
    """Trains a `FeatureClassifier` on `data.train_split`, repeatably.

    Training uses small random shifts (2 pixels) so that the judge does not
    hinge on exact digit placement. The same data and seed give the same
    weights in every process on a machine: the judge is the ruler that
    compares runs, so two runs on the same data must be read by the same
    judge. Its layers are float32 whatever the global dtype policy.

    Returns:
      `(classifier, held-out accuracy on data.eval_split)`.
    """
    images, labels = load_split(data, data.train_split)
    keras.utils.set_random_seed(seed)
    classifier = FeatureClassifier(num_classes=data.num_classes,
                                   name="classifier")
    classifier.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    pad = 2
    side = data.image_size

    def shift(index, example):
        image, label = example
        padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]],
                        constant_values=-1.0)
        # Stateless, keyed by the example's position in the whole stream:
        # a stateful crop inside a parallel map draws its offsets in
        # whatever order the threads run, and no two judges came out alike.
        return tf.image.stateless_random_crop(
            padded, [side, side, data.channels],
            seed=tf.stack([tf.constant(seed, tf.int64), index])), label

    # All epochs in one pass, so that `enumerate` numbers every draw.
    train = (tf.data.Dataset.from_tensor_slices((images, labels))
             .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
             .repeat(epochs)
             .enumerate()
             .map(shift, num_parallel_calls=tf.data.AUTOTUNE)
             .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    classifier.fit(train, epochs=1, shuffle=False,
                   verbose=2 if verbose else 0)
    test_images, test_labels = load_split(data, data.eval_split)
    predicted, _ = predict(classifier, test_images)
    return classifier, float(np.mean(predicted == test_labels))


def get_classifier(data, workdir: Optional[str], verbose: bool = False
                   ) -> Tuple[FeatureClassifier, float]:
    """The task's classifier, trained once and kept in `workdir`.

    A cached classifier is reused only if it was trained on the same data
    (reader, folder however spelt, sizes, splits) by the current recipe;
    otherwise it is trained again and replaces it.

    Returns:
      `(classifier, its held-out accuracy on real data)`.
    """
    folder = os.path.join(workdir, CLASSIFIER_DIR) if workdir else None
    if folder and os.path.exists(os.path.join(folder, _INFO_FILE)):
        with open(os.path.join(folder, _INFO_FILE)) as f:
            info = json.load(f)
        cached = dict(info.get("data") or {})
        cached["data_dir"] = _folder(cached.get("data_dir"))
        if cached == _fingerprint(data):
            classifier = keras.saving.load_model(
                os.path.join(folder, _MODEL_FILE))
            return classifier, float(info["accuracy"])
    if verbose:
        print(f"Training the judge classifier on {data.train_split!r} of "
              f"{data.data_dir or 'the embedded sample'} (once; kept in "
              f"{folder or 'memory'})", flush=True)
    classifier, accuracy = train_classifier(data, verbose=False)
    if folder:
        os.makedirs(folder, exist_ok=True)
        # Written to temporary names and renamed: a killed run leaves no
        # half-written classifier behind.
        tmp_model = os.path.join(folder, "tmp-" + _MODEL_FILE)
        classifier.save(tmp_model)
        os.replace(tmp_model, os.path.join(folder, _MODEL_FILE))
        tmp_info = os.path.join(folder, "tmp-" + _INFO_FILE)
        with open(tmp_info, "w") as f:
            json.dump({"data": _fingerprint(data), "accuracy": accuracy}, f,
                      indent=2)
        os.replace(tmp_info, os.path.join(folder, _INFO_FILE))
    return classifier, accuracy
