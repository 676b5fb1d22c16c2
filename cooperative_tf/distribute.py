"""Choosing a tf.distribute strategy, and who writes files in a cluster."""

from __future__ import annotations

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")


def _cluster_from_env():
    """A cluster resolver from TF_CONFIG or Slurm, or None on one machine."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    if tf_config.get("cluster"):
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return tf.distribute.cluster_resolver.SlurmClusterResolver()
    return None


def choose_strategy(name: str, has_cluster: bool, num_gpus: int) -> str:
    """Resolves `auto` to a concrete strategy name (see `make_strategy`)."""
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {STRATEGIES}. "
                         f"Received: strategy={name!r}")
    if name != "auto":
        return name
    if has_cluster:
        return "multi_worker"
    return "mirrored" if num_gpus > 1 else "one_device"


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Returns the strategy `name` asks for.

    `auto` picks MultiWorkerMirroredStrategy when TF_CONFIG (or Slurm with
    more than one task) describes a cluster, MirroredStrategy when more than
    one GPU is visible, and the default one-device strategy otherwise.

    Raises:
      ValueError: For an unknown name, or `multi_worker` without a cluster.
    """
    resolver = _cluster_from_env()
    name = choose_strategy(name, resolver is not None,
                           len(tf.config.list_physical_devices("GPU")))
    if name == "multi_worker":
        if resolver is None:
            raise ValueError(
                "--strategy=multi_worker needs a cluster: set TF_CONFIG (see "
                "launch/local_workers.sh) or run under Slurm with "
                "--ntasks > 1. Received: TF_CONFIG unset")
        return tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=resolver)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    # Physical devices: listing logical ones would start the runtime, after
    # which a cluster's collective ops can no longer be configured.
    gpus = tf.config.list_physical_devices("GPU")
    return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def needs_distributed_input(strategy: tf.distribute.Strategy) -> bool:
    """Whether the dataset must be built per input pipeline and sharded."""
    return strategy.num_replicas_in_sync > 1 or is_multi_worker(strategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one process that writes checkpoints, samples and exports.

    With a `chief` task in the cluster that task is chief; otherwise worker 0.
    """
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def wait_for_every_worker(strategy: tf.distribute.Strategy) -> None:
    """Returns once every worker of a multi-worker run has called it.

    One all-reduce of a scalar: at the end of a run it keeps the workers
    alive while the chief exports, since a worker that exits early is
    reported by the chief's collective executor as a crashed task
    ("The following tasks are unhealthy"), which makes a successful run
    read as a failed one. A no-op on one process.
    """
    if not is_multi_worker(strategy):
        return

    @tf.function
    def all_reduce():
        ones = strategy.run(lambda: tf.ones([]))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)

    all_reduce()
