"""tf.distribute: replicas and workers compute what one device computes.

Each run is a separate process (tests/distributed_run.py or the launcher),
because logical devices and TF_CONFIG must be set before TensorFlow starts.
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import tiny
from conftest import REPO
from cooperative_tf.distribute import choose_strategy, is_chief

RUN = str(REPO / "tests" / "distributed_run.py")


def env(**extra):
    base = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    base.pop("TF_CONFIG", None)
    base.update(extra)
    return base


def run(tmp_path, name, *args):
    out = tmp_path / f"{name}.npz"
    proc = subprocess.run([sys.executable, RUN, f"--out={out}", *args],
                          capture_output=True, text=True, env=env(),
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(out)), json.loads(proc.stdout.strip().splitlines()[-1])


def max_diff(a, b):
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}"
                                              for p in ports]},
                       "task": {"type": "worker", "index": index}})


@pytest.mark.slow
def test_two_mirrored_replicas_match_one_device(tmp_path):
    one, logs1 = run(tmp_path, "one", "--steps=3")
    two, logs2 = run(tmp_path, "two", "--strategy=mirrored", "--devices=2",
                     "--steps=3")
    assert logs1["replicas"] == 1 and logs2["replicas"] == 2
    assert int(two["iterations"]) == 3
    # Same global batch, losses scaled by the global batch, gradients summed
    # across replicas, X sliced from the global draw: the same weights.
    assert max_diff(one, two) < 1e-5
    # Metrics are aggregated over both replicas.
    assert logs2["logs"]["fast_mse"] == pytest.approx(
        logs1["logs"]["fast_mse"], rel=1e-4)


@pytest.mark.slow
def test_long_run_negatives_match_one_device_on_two_replicas(tmp_path):
    # Every k-th row of each replica's share is every k-th of the global
    # batch: the same rows, chains and value shift as on one device.
    one, logs1 = run(tmp_path, "one", "--steps=2", "--long_run_steps=3")
    two, logs2 = run(tmp_path, "two", "--strategy=mirrored", "--devices=2",
                     "--steps=2", "--long_run_steps=3")
    assert max_diff(one, two) < 1e-5
    for name in ("long_run_gap", "long_run_move", "value_gap"):
        assert logs2["logs"][name] == pytest.approx(logs1["logs"][name],
                                                    rel=1e-4), name
    plain, _ = run(tmp_path, "plain", "--steps=2")
    assert max_diff(one, plain) > 1e-4


@pytest.mark.slow
def test_batch_norm_per_replica_or_synchronised(tmp_path):
    one, _ = run(tmp_path, "one", "--steps=3", "--norm=batch")
    synced, _ = run(tmp_path, "synced", "--strategy=mirrored", "--devices=2",
                    "--steps=3", "--norm=batch", "--sync_bn")
    assert max_diff(one, synced) < 1e-5
    # Per-replica batch norm normalises each replica's half of the batch on
    # its own, so the policy's weights move differently.
    per_replica, _ = run(tmp_path, "per_replica", "--strategy=mirrored",
                         "--devices=2", "--steps=3", "--norm=batch")
    assert max_diff(one, per_replica) > 1e-4


@pytest.mark.slow
def test_autotune_times_paths_under_two_mirrored_replicas(tmp_path):
    # The candidates run on the strategy's distributed input, as the run
    # will; the training after them is unchanged.
    one, _ = run(tmp_path, "one", "--steps=2")
    tuned, out = run(tmp_path, "tuned", "--strategy=mirrored",
                     "--devices=2", "--steps=2", "--autotune")
    assert out["replicas"] == 2
    assert set(out["autotune"]) == {"graph/while_loop", "graph/unrolled"}
    for timing in out["autotune"].values():
        assert timing["median_s"] > 0 and timing["first_s"] > 0
    assert max_diff(one, tuned) < 1e-4


@pytest.mark.slow
def test_xla_langevin_under_mirrored_strategy(tmp_path):
    one, _ = run(tmp_path, "one", "--steps=2")
    xla, _ = run(tmp_path, "xla", "--strategy=mirrored", "--devices=2",
                 "--steps=2", "--jit")
    assert max_diff(one, xla) < 1e-4


@pytest.mark.slow
def test_langevin_noise_differs_across_replicas(tmp_path):
    refine = tmp_path / "refine.npz"
    run(tmp_path, "noisy", "--strategy=mirrored", "--devices=2", "--steps=1",
        "--noise", f"--refinements={refine}")
    noisy = np.load(refine)
    assert np.abs(noisy["arr_0"] - noisy["arr_1"]).max() > 1e-3
    run(tmp_path, "quiet", "--strategy=mirrored", "--devices=2", "--steps=1",
        f"--refinements={refine}")
    quiet = np.load(refine)
    np.testing.assert_array_equal(quiet["arr_0"], quiet["arr_1"])


@pytest.mark.slow
def test_two_workers_match_each_other_and_one_process(tmp_path):
    one, _ = run(tmp_path, "one", "--steps=3", "--norm=batch", "--sync_bn")
    ports = free_ports(2)
    procs = [subprocess.Popen(
        [sys.executable, RUN, f"--out={tmp_path / f'worker{i}.npz'}",
         "--strategy=multi_worker", "--steps=3", "--norm=batch",
         "--sync_bn"],
        env=env(TF_CONFIG=tf_config(ports, i)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for i in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    w0 = dict(np.load(tmp_path / "worker0.npz"))
    w1 = dict(np.load(tmp_path / "worker1.npz"))
    assert max_diff(w0, w1) == 0.0
    assert max_diff(w0, one) < 1e-5


LAUNCH_TINY = ["--task=zappos", "--strategy=auto"] + [
    f"--set={s}" for s in tiny.IMAGE_16 + [
        "data.load_size=20", "train.batch_size=8",
        "train.checkpoint_every=2"]]


def start_workers(workdir, steps, ports):
    return [subprocess.Popen(
        [sys.executable, "-m", "cooperative_tf.launch", *LAUNCH_TINY,
         f"--workdir={workdir}", f"--train_steps={steps}"],
        env=env(TF_CONFIG=tf_config(ports, i)), cwd=str(REPO),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)]


@pytest.mark.slow
def test_killed_worker_job_resumes_from_last_checkpoint(tmp_path):
    workdir = tmp_path / "run"
    ckpt = workdir / "checkpoints"
    procs = start_workers(workdir, 400, free_ports(2))
    deadline = time.time() + 300
    while time.time() < deadline and not list(ckpt.glob("ckpt-*.index")):
        time.sleep(0.5)
    assert list(ckpt.glob("ckpt-*.index")), "no checkpoint was written"
    procs[1].kill()  # a worker dies mid-run ...
    try:
        procs[0].wait(timeout=60)  # ... its peer fails or hangs in a collective
    except subprocess.TimeoutExpired:
        procs[0].kill()
    for proc in procs:
        proc.wait()
    saved = sorted(int(p.name.split("-")[1].split(".")[0])
                   for p in ckpt.glob("ckpt-*.index"))
    assert saved and saved[-1] < 400
    # The job restarts (as Slurm or the training operator would) and resumes.
    final = saved[-1] + 4
    procs = start_workers(workdir, final, free_ports(2))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs[0][-3000:]
    assert f"Resumed from {ckpt / f'ckpt-{saved[-1]}'}" in outputs[0]
    assert f"step {saved[-1] + 1}/{final}" in outputs[0]
    assert (ckpt / f"ckpt-{final}.index").exists()
    # Only the chief keeps checkpoints; worker scratch copies are gone.
    assert not (workdir / "tmp_worker_checkpoints").exists()
    # Only the chief exports, and the other worker waits for it: a clean
    # run's log holds no report of a crashed task.
    assert "Exported" in outputs[0] and "Exported" not in outputs[1]
    assert "The chief exports; this worker waits for it." in outputs[1]
    assert sorted(p.name for p in (workdir / "export" / "zappos").iterdir()
                  ) == ["1"]
    for output in outputs:
        assert "unhealthy" not in output and "StartAbort" not in output


def test_auto_strategy_choice():
    assert choose_strategy("auto", has_cluster=False, num_gpus=0) == \
        "one_device"
    assert choose_strategy("auto", has_cluster=False, num_gpus=1) == \
        "one_device"
    assert choose_strategy("auto", has_cluster=False, num_gpus=2) == \
        "mirrored"
    assert choose_strategy("auto", has_cluster=True, num_gpus=8) == \
        "multi_worker"
    assert choose_strategy("mirrored", has_cluster=True, num_gpus=0) == \
        "mirrored"
    with pytest.raises(ValueError, match="--strategy must be one of"):
        choose_strategy("tpu", False, 0)


class _Resolver:
    def __init__(self, task_type, task_id, cluster):
        self.task_type, self.task_id, self._cluster = task_type, task_id, \
            cluster

    def cluster_spec(self):
        import tensorflow as tf
        return tf.train.ClusterSpec(self._cluster)


class _FakeMultiWorker:
    """Stands in for MultiWorkerMirroredStrategy in `is_chief`."""

    def __init__(self, resolver):
        self.cluster_resolver = resolver


def test_only_the_chief_writes(monkeypatch):
    import tensorflow as tf
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy",
                        _FakeMultiWorker)
    workers = {"worker": ["a:1", "b:1"]}
    with_chief = {"chief": ["c:1"], "worker": ["a:1"]}
    assert is_chief(_FakeMultiWorker(_Resolver("worker", 0, workers)))
    assert not is_chief(_FakeMultiWorker(_Resolver("worker", 1, workers)))
    assert is_chief(_FakeMultiWorker(_Resolver("chief", 0, with_chief)))
    assert not is_chief(_FakeMultiWorker(_Resolver("worker", 0, with_chief)))
    assert is_chief(tf.distribute.get_strategy())
