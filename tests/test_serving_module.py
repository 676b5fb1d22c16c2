"""The serving module's signatures (`cooperative_tf.serving.module`), as
TF Serving runs them.

Each model is exported once, then loaded in a fresh process, the way TF
Serving sees it: without this project's Python code. That process runs every
call of the tests (equality with the eager model, the REST requests of
`launch/serving/requests`, bad requests) and hands the results back.

This file doubles as that process (`python test_serving_module.py JOB
RESULTS`), so `cooperative_tf` is imported inside the tests, never at the
top. The version folders, the work-directory export and float32 copies
(`serving.writer`): `test_serving_writer.py`; input checks:
`test_serving_checks.py`.
"""

import base64
import importlib.util
import json
import os
import pathlib
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tiny import EXPORT_TINY as TINY
from tiny import MAX_STEPS, MNIST, ZAPPOS, assert_close, differ, eager
from tiny import export_tiny, seeds, value

REPO = pathlib.Path(__file__).resolve().parents[1]
SERVING = REPO / "launch" / "serving"
REQUESTS = SERVING / "requests"
DOC = REPO / "docs" / "serving.md"



# ------------------------------------------------- REST requests, as JSON
def _unb64(value):
    """Replaces TF Serving's `{"b64": s}` objects by the bytes they encode."""
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise ValueError(f"Only {{'b64': ...}} objects are allowed in a "
                             f"tensor. Received: {sorted(value)}")
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_unb64(v) for v in value]
    return value


def _to_array(value, spec: tf.TensorSpec) -> np.ndarray:
    if spec.dtype == tf.string:
        return np.array(value, dtype=object)
    array = np.array(value)
    # TF Serving refuses 1.5 for an int input rather than truncating it.
    if spec.dtype.is_integer and array.dtype.kind not in "iub":
        raise TypeError(f"Input {spec.name!r} takes integers. "
                        f"Received: {value!r}")
    return array.astype(spec.dtype.as_numpy_dtype)


def request_to_inputs(body: dict, specs: dict) -> dict:
    """A REST `predict` body -> `{input name: array}`, as TF Serving reads it.

    Row format: `instances` is a list of per-example objects, stacked along a
    new batch dimension. Columnar format: `inputs` is an object of already
    batched values.
    """
    if "instances" in body:
        rows = body["instances"]
        for i, row in enumerate(rows):
            if set(row) != set(specs):
                raise ValueError(f"instances[{i}] must have the inputs "
                                 f"{sorted(specs)}. Received: {sorted(row)}")
        columns = {name: [_unb64(row[name]) for row in rows]
                   for name in specs}
    elif "inputs" in body:
        if set(body["inputs"]) != set(specs):
            raise ValueError(f"inputs must be {sorted(specs)}. "
                             f"Received: {sorted(body['inputs'])}")
        columns = {name: _unb64(v) for name, v in body["inputs"].items()}
    else:
        raise ValueError("A predict body has `instances` or `inputs`. "
                         f"Received: {sorted(body)}")
    return {name: _to_array(columns[name], specs[name]) for name in specs}


def outputs_to_response(outputs: dict, row: bool) -> dict:
    """Outputs -> the REST response; `*_bytes` outputs become base64."""
    def encode(name, value):
        if name.endswith("_bytes"):
            return [{"b64": base64.b64encode(v).decode()}
                    for v in value.tolist()]
        return value.tolist()

    encoded = {name: encode(name, v) for name, v in outputs.items()}
    if not row:
        return {"outputs": encoded}
    batch = len(next(iter(encoded.values())))
    return {"predictions": [{name: v[i] for name, v in encoded.items()}
                            for i in range(batch)]}


# ------------------------------------------------- the fresh process
def _run_calls(model_dir: str, calls: list) -> dict:
    loaded = tf.saved_model.load(model_dir)
    results = {}
    for call in calls:
        try:
            if "request" in call:
                with open(call["request"]) as f:
                    body = json.load(f)
                signature = body.get("signature_name", "serving_default")
                specs = loaded.signatures[signature].structured_input_signature
                inputs = request_to_inputs(body, specs[1])
            else:
                signature, inputs = call["signature"], call["inputs"]
            out = loaded.signatures[signature](
                **{k: tf.constant(v) for k, v in inputs.items()})
            out = {k: v.numpy() for k, v in out.items()}
            result = {"inputs": inputs, "outputs": out}
            if "request" in call:
                result["response"] = json.dumps(
                    outputs_to_response(out, "instances" in body))
        except Exception as e:  # noqa: BLE001 -- the message is the result
            result = {"error": f"{type(e).__name__}: {e}"}
        results[call["id"]] = result
    return results


def _serve_main(job_path: str, results_path: str) -> int:
    """Loads each SavedModel and runs its calls; see `serve_fresh`."""
    with open(job_path, "rb") as f:
        job = pickle.load(f)
    results = {key: _run_calls(model_dir, calls)
               for key, (model_dir, calls) in job.items()}
    results["__modules__"] = sorted({m.split(".")[0] for m in sys.modules})
    with open(results_path, "wb") as f:
        pickle.dump(results, f)
    return 0


def serve_fresh(job: dict, tmp_path) -> dict:
    """Runs calls on SavedModels in one new Python process.

    Args:
      job: `{key: (version folder, calls)}`; a call is a dict with `id` and
        either `signature` and `inputs` (arrays) or `request` (a REST JSON
        file).

    Returns:
      `{key: {id: {"inputs", "outputs"[, "response"]} or {"error": text}}}`
      and `__modules__`, the top-level modules that process imported.
    """
    job_file, results = tmp_path / "job.pkl", tmp_path / "results.pkl"
    with open(job_file, "wb") as f:
        pickle.dump(job, f)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run(
        [sys.executable, __file__, str(job_file), str(results)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(results, "rb") as f:
        return pickle.load(f)


# ------------------------------------------------- the eager model
# (`tiny.eager`, `tiny.value`, `tiny.assert_close`), and:
def png(images) -> np.ndarray:
    """[-1, 1] images -> PNG bytes (exact for values p / 127.5 - 1)."""
    pixels = np.round((np.asarray(images) + 1.0) * 127.5).astype(np.uint8)
    return np.array([tf.io.encode_png(p).numpy() for p in pixels],
                    dtype=object)


def preprocess(encoded, channels, size):
    """The evaluation pipeline on encoded images, for expected values."""
    from pipelines import ops, readers

    prepare = ops.compose([ops.to_channels(channels, ["x"]),
                           ops.resize(size, ["x"]), ops.to_float(["x"])])
    return np.stack([prepare({"x": readers.decode_image(e)})["x"].numpy()
                     for e in encoded])


def check_request(result, trainer, condition_of, size):
    """A REST request's outputs equal the eager model on its inputs."""
    assert "error" not in result, result.get("error")
    inputs, out = result["inputs"], result["outputs"]
    response = json.loads(result["response"])
    assert "predictions" in response or "outputs" in response
    condition = condition_of(inputs)
    if "image" in out:  # a generating signature
        steps = inputs.get("steps")
        fast, refined = eager(trainer, condition, out["seed"], steps,
                              inputs.get("step_size"))
        assert_close(out["image"], refined)
        if "fast" in out:
            assert_close(out["fast"], fast)
        np.testing.assert_array_equal(out["seed"][inputs["seed"] >= 0],
                                      inputs["seed"][inputs["seed"] >= 0])
    else:
        image = (inputs["image"] if "image" in inputs else
                 preprocess(inputs["image_bytes"],
                            trainer.policy.channels, size))
        assert_close(out["value"], value(trainer, image, condition))


# ------------------------------------------------- fixtures
_export = export_tiny


@pytest.fixture(scope="module")
def label_model(tmp_path_factory):
    return _export("mnist", MNIST, tmp_path_factory)


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    return _export("zappos", ZAPPOS, tmp_path_factory)


def _request_calls(task):
    return [{"id": f"json:{p.name}", "request": str(p)}
            for p in sorted((REQUESTS / task).glob("*.json"))]


LABELS = np.array([3, 7], np.int64)


def label_calls() -> list:
    """Calls on the label model: good ones, bad ones, the REST requests."""
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, [2, 32, 32, 1]).astype(np.float32)
    ok = {"label": LABELS, "seed": seeds(11, 12)}
    steps = {"steps": np.array([3, 0], np.int32),
             "step_size": np.array([0.002, 0.004], np.float32)}
    calls = [
        {"id": "default", "signature": "serving_default", "inputs": ok},
        {"id": "random", "signature": "serving_default",
         "inputs": {"label": LABELS, "seed": seeds(-1, -1)}},
        {"id": "refine", "signature": "refine", "inputs": {**ok, **steps}},
        {"id": "energy", "signature": "energy",
         "inputs": {"image": image, "label": LABELS}},
        {"id": "energy_bytes", "signature": "energy_bytes",
         "inputs": {"image_bytes": png(image), "label": LABELS}},
        # Bad requests.
        {"id": "label_10", "signature": "serving_default",
         "inputs": {"label": np.array([10], np.int64), "seed": seeds(1)}},
        {"id": "label_-1", "signature": "energy",
         "inputs": {"image": image[:1],
                    "label": np.array([-1], np.int64)}},
        {"id": "label_float", "signature": "serving_default",
         "inputs": {"label": np.array([1.5], np.float32), "seed": seeds(1)}},
        {"id": "steps_negative", "signature": "refine",
         "inputs": {**ok, **steps, "steps": np.array([-1, 2], np.int32)}},
        {"id": "steps_too_many", "signature": "refine",
         "inputs": {**ok, **steps,
                    "steps": np.array([MAX_STEPS + 1, 2], np.int32)}},
        {"id": "step_size_zero", "signature": "refine",
         "inputs": {**ok, **steps, "step_size": np.array([0, 0.1], "f4")}},
        {"id": "step_size_big", "signature": "refine",
         "inputs": {**ok, **steps,
                    "step_size": np.array([0.002, 0.03], np.float32)}},
        {"id": "batch_mismatch", "signature": "refine",
         "inputs": {**ok, **steps, "steps": np.array([1], np.int32)}},
        {"id": "image_shape", "signature": "energy",
         "inputs": {"image": image[:, :16, :16], "label": LABELS}},
        {"id": "undecodable", "signature": "energy_bytes",
         "inputs": {"image_bytes": np.array([b"not an image"], object),
                    "label": LABELS[:1]}},
    ] + _request_calls("mnist")
    return calls


def image_calls(config) -> tuple:
    """Calls on the image model, and the data they were made from."""
    import pipelines

    batch = next(iter(pipelines.build_dataset(
        config.data, config.data.eval_split, 2, training=False,
        repeat=False)))
    edges = batch["condition"].numpy()
    photos = batch["target"].numpy()
    # A JPEG of another size: decoded, resized and mapped like training.
    odd = tf.image.resize(edges[1:], [100, 100]).numpy()
    odd_jpeg = tf.io.encode_jpeg(tf.cast(
        np.round((odd[0] + 1) * 127.5), tf.uint8)).numpy()
    edge_png = png(edges)
    mixed = np.array([edge_png[0], odd_jpeg], object)
    photo_jpeg = np.array([tf.io.encode_jpeg(tf.cast(
        np.round((p + 1) * 127.5), tf.uint8)).numpy() for p in photos],
        object)
    ok = {"condition": edges, "seed": seeds(21, 22)}
    steps = {"steps": np.array([2, 0], np.int32),
             "step_size": np.array([0.002, 0.003], np.float32)}
    calls = [
        {"id": "default", "signature": "serving_default", "inputs": ok},
        {"id": "refine", "signature": "refine", "inputs": {**ok, **steps}},
        {"id": "energy", "signature": "energy",
         "inputs": {"image": photos, "condition": edges}},
        {"id": "serving_bytes", "signature": "serving_bytes",
         "inputs": {"condition_bytes": edge_png, "seed": seeds(21, 22)}},
        {"id": "refine_bytes", "signature": "refine_bytes",
         "inputs": {"condition_bytes": mixed, "seed": seeds(21, 22),
                    **steps}},
        {"id": "energy_bytes", "signature": "energy_bytes",
         "inputs": {"image_bytes": photo_jpeg, "condition_bytes": mixed}},
        # Bad requests.
        {"id": "condition_shape", "signature": "serving_default",
         "inputs": {"condition": edges[:, :32, :32], "seed": seeds(1, 2)}},
        {"id": "condition_rank", "signature": "serving_default",
         "inputs": {"condition": edges[0], "seed": seeds(1)}},
        {"id": "seed_scalar", "signature": "serving_bytes",
         "inputs": {"condition_bytes": edge_png[:1],
                    "seed": np.array(5, np.int64)}},
        {"id": "condition_range", "signature": "serving_default",
         "inputs": {"condition": (edges + 1) * 127.5, "seed": seeds(1, 2)}},
        {"id": "condition_dtype", "signature": "serving_default",
         "inputs": {"condition": edges.astype(np.float64),
                    "seed": seeds(1, 2)}},
        {"id": "image_channels", "signature": "energy",
         "inputs": {"image": photos[..., :1], "condition": edges}},
        {"id": "undecodable", "signature": "refine_bytes",
         "inputs": {"condition_bytes": np.array([b"<html>", edge_png[0]],
                                                object),
                    "seed": seeds(1, 2), **steps}},
        {"id": "steps_too_many", "signature": "refine_bytes",
         "inputs": {"condition_bytes": edge_png, "seed": seeds(1, 2),
                    **steps, "steps": np.array([0, 99], np.int32)}},
    ] + _request_calls("zappos")
    return calls, {"edges": edges, "photos": photos, "mixed": mixed,
                   "photo_jpeg": photo_jpeg}


@pytest.fixture(scope="module")
def cli_processes(label_model, image_model):
    """`saved_model_cli show --all` of both exports, started in the
    background so they run while the fresh process serves."""
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    procs = {name: subprocess.Popen(
        [str(cli), "show", "--all", "--dir", model[2]], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name, model in (("label_model", label_model),
                            ("image_model", image_model))}
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def served(label_model, image_model, cli_processes, tmp_path_factory):
    calls, data = image_calls(image_model[0])
    results = serve_fresh({"mnist": (label_model[2], label_calls()),
                           "zappos": (image_model[2], calls)},
                          tmp_path_factory.mktemp("serve"))
    results["zappos"]["_data"] = data
    return results


@pytest.fixture(scope="module")
def label_served(served):
    return served["mnist"]


@pytest.fixture(scope="module")
def image_served(served):
    return served["zappos"]


# ------------------------------------------------- layout and signatures
@pytest.fixture(scope="module")
def cli_listings(cli_processes, served):
    # After `served`, so the listings run alongside the fresh process.
    return {name: (proc.communicate(timeout=300), proc.returncode)
            for name, proc in cli_processes.items()}


@pytest.mark.parametrize("model", ["label_model", "image_model"])
def test_saved_model_cli_lists_predict_signatures(model, cli_listings,
                                                  request):
    config = request.getfixturevalue(model)[0]
    (stdout, stderr), returncode = cli_listings[model]
    assert returncode == 0, stderr[-2000:]
    expected = {"serving_default", "refine", "energy", "energy_bytes"}
    if config.data.condition != "label":
        expected |= {"serving_bytes", "refine_bytes"}
    listed = set(re.findall(r"signature_def\['(\w+)'\]", stdout))
    assert listed - {"__saved_model_init_op"} == expected
    assert stdout.count(
        "Method name is: tensorflow/serving/predict") == len(expected)
    assert "image_png_bytes" in stdout and "step_size" in stdout


# ------------------------------------------------- fresh-process equality
def test_served_process_does_not_import_the_project(served):
    assert "tensorflow" in served["__modules__"]
    assert "cooperative_tf" not in served["__modules__"]
    assert "pipelines" not in served["__modules__"]


def test_label_signatures_equal_eager_model(label_model, label_served):
    _, trainer, _ = label_model
    one_hot = np.eye(10, dtype=np.float32)[LABELS]
    default = label_served["default"]["outputs"]
    fast, _ = eager(trainer, one_hot, [11, 12])
    assert_close(default["image"], fast)
    np.testing.assert_array_equal(default["seed"], [11, 12])
    decoded = np.stack([tf.io.decode_png(p).numpy()
                        for p in default["image_png_bytes"]])
    np.testing.assert_array_equal(decoded, np.clip(
        (default["image"] + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8))

    refine = label_served["refine"]
    out = refine["outputs"]
    fast, refined = eager(trainer, one_hot, [11, 12], [3, 0], [0.002, 0.004])
    assert_close(out["fast"], fast)
    assert_close(out["image"], refined)
    assert_close(out["image"][1], out["fast"][1])  # 0 steps
    assert differ(out["image"][0], out["fast"][0])
    assert_close(out["value"], value(trainer, refined, one_hot))
    assert_close(out["fast_value"], value(trainer, fast, one_hot))

    image = label_served["energy"]["inputs"]["image"]
    expected = value(trainer, image, one_hot)
    assert_close(label_served["energy"]["outputs"]["value"], expected)
    # PNG rounds the image to 8 bits.
    rounded = np.round((image + 1) * 127.5) / 127.5 - 1
    assert_close(
        label_served["energy_bytes"]["outputs"]["value"],
        value(trainer, rounded, one_hot))


def test_negative_seed_is_random_and_reported(label_model, label_served):
    _, trainer, _ = label_model
    out = label_served["random"]["outputs"]
    assert (out["seed"] >= 0).all() and out["seed"][0] != out["seed"][1]
    assert differ(out["image"][0], out["image"][1])
    fast, _ = eager(trainer, np.eye(10, dtype=np.float32)[LABELS],
                    out["seed"])
    assert_close(out["image"], fast)


def test_image_signatures_equal_eager_model(image_model, image_served):
    config, trainer, _ = image_model
    data = image_served["_data"]
    edges, photos = data["edges"], data["photos"]
    fast, _ = eager(trainer, edges, [21, 22])
    assert_close(image_served["default"]["outputs"]["image"], fast)
    # PNG edge maps decode to exactly the pipeline's float edge maps.
    assert_close(
        image_served["serving_bytes"]["outputs"]["image"], fast)

    fast, refined = eager(trainer, edges, [21, 22], [2, 0], [0.002, 0.003])
    out = image_served["refine"]["outputs"]
    assert_close(out["fast"], fast)
    assert_close(out["image"], refined)
    assert_close(out["value"], value(trainer, refined, edges))

    size = config.data.image_size
    mixed = preprocess(data["mixed"], 1, size)
    np.testing.assert_array_equal(mixed[0], edges[0])
    fast, refined = eager(trainer, mixed, [21, 22], [2, 0], [0.002, 0.003])
    out = image_served["refine_bytes"]["outputs"]
    assert_close(out["image"], refined)

    assert_close(image_served["energy"]["outputs"]["value"],
                 value(trainer, photos, edges))
    photos_jpeg = preprocess(data["photo_jpeg"], 3, size)
    assert_close(
        image_served["energy_bytes"]["outputs"]["value"],
        value(trainer, photos_jpeg, mixed))


# ------------------------------------------------- REST requests
def test_rest_requests_run_in_row_and_columnar_format(
        label_model, label_served, image_model, image_served):
    cases = ((label_model, label_served, "mnist",
              lambda x: np.eye(10, dtype=np.float32)[x["label"]]),
             (image_model, image_served, "zappos",
              lambda x: x["condition"] if "condition" in x else
              preprocess(x["condition_bytes"], 1, 64)))
    for (config, trainer, _), served, task, condition_of in cases:
        files = sorted((REQUESTS / task).glob("*.json"))
        signatures = {p.name.split(".")[0] for p in files}
        assert len(files) == 2 * len(signatures) >= 8
        for p in files:
            check_request(served[f"json:{p.name}"], trainer, condition_of,
                          config.data.image_size)
        # Both formats of a request carry the same tensors.
        for signature in signatures:
            row = served[f"json:{signature}.row.json"]["inputs"]
            columnar = served[f"json:{signature}.columnar.json"]["inputs"]
            assert row.keys() == columnar.keys()
            for name in row:
                np.testing.assert_array_equal(row[name], columnar[name])


def test_bytes_outputs_are_base64_in_rest_responses(image_served):
    response = json.loads(
        image_served["json:refine_bytes.row.json"]["response"])
    first = response["predictions"][0]
    image = tf.io.decode_png(base64.b64decode(first["image_png_bytes"]["b64"]))
    assert image.shape == (64, 64, 3)
    assert isinstance(first["value"], float) and first["seed"] == 42


def test_request_converter_reads_both_formats():
    specs = {"label": tf.TensorSpec([None], tf.int64, "label"),
             "image_bytes": tf.TensorSpec([None], tf.string, "image_bytes")}
    b64 = {"b64": base64.b64encode(b"\x89PNG").decode()}
    row = request_to_inputs({"instances": [{"label": 1, "image_bytes": b64},
                                           {"label": 2, "image_bytes": b64}]},
                            specs)
    columnar = request_to_inputs(
        {"inputs": {"label": [1, 2], "image_bytes": [b64, b64]}}, specs)
    for inputs in (row, columnar):
        np.testing.assert_array_equal(inputs["label"], [1, 2])
        assert list(inputs["image_bytes"]) == [b"\x89PNG"] * 2
    with pytest.raises(TypeError, match="takes integers"):
        request_to_inputs({"inputs": {"label": [1.5], "image_bytes": [b64]}},
                          specs)
    with pytest.raises(ValueError, match="must have the inputs"):
        request_to_inputs({"instances": [{"label": 1}]}, specs)


def test_doc_shows_every_request_file():
    spec = importlib.util.spec_from_file_location(
        "make_requests", SERVING / "make_requests.py")
    make_requests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_requests)
    text = DOC.read_text()
    shown = dict(re.findall(
        r"`(launch/serving/requests/[\w/.]+\.json)`:\n\n```json\n(.*?)```",
        text, re.S))
    assert sorted(shown) == sorted(make_requests.request_files())
    for path, block in shown.items():
        with open(REPO / path) as f:
            assert json.loads(block) == make_requests.abbreviate(json.load(f))
    assert "--rest_api_port" in text and "--model_config_file" in text


def test_models_config_names_both_models():
    text = (SERVING / "models.config").read_text()
    assert "model_config_list" in text
    body = text[text.index("model_config_list"):].strip()
    assert body in DOC.read_text()  # the doc shows the file as it is
    for task in ("mnist", "zappos"):
        assert re.search(r'name: "%s"\s+base_path: "[^"]+/%s"\s+'
                         r'model_platform: "tensorflow"' % (task, task), text)
    try:  # the protos ship in tensorflow-serving-api, when installed
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError:
        return
    parsed = text_format.Parse(text,
                               model_server_config_pb2.ModelServerConfig())
    assert [c.name for c in parsed.model_config_list.config] == [
        "mnist", "zappos"]


# ------------------------------------------------- bad requests
@pytest.mark.parametrize("call, message", [
    ("label_10", "label must be a class id in [0, 10). Received: label="),
    ("label_-1", "label must be a class id in [0, 10)"),
    ("label_float", "expected to be a int64 tensor but is a float tensor"),
    ("steps_negative", f"steps must be in [0, max_steps={MAX_STEPS}]. "
                       "Received: steps=] [-1 2]"),
    ("steps_too_many", f"steps must be in [0, max_steps={MAX_STEPS}]"),
    ("step_size_zero", "step_size must be in (0, max_step_size=0.02]"),
    ("step_size_big", "step_size must be in (0, max_step_size=0.02]. "
                      "Received: step_size="),
    ("batch_mismatch", "Every input needs the same batch size (dimension 0) "
                       "as label. Received: steps.shape="),
    ("image_shape", "image must be [batch, 32, 32, 1]. Received: "
                    "image.shape=] [2 16 16 1]"),
    ("undecodable", "Unknown image file format"),
])
def test_bad_label_requests_fail_clearly(label_served, call, message):
    assert message in label_served[call].get("error", "no error")


@pytest.mark.parametrize("call, message", [
    ("condition_shape", "condition must be [batch, 64, 64, 1]. Received: "
                        "condition.shape=] [2 32 32 1]"),
    ("condition_rank", "condition must have 4 dimension(s), the first being "
                       "the batch. Received: condition.shape=] [64 64 1]"),
    ("seed_scalar", "seed must have 1 dimension(s), the first being the "
                    "batch. Received: seed.shape=] []"),
    ("condition_range", "condition values must be in [-1, 1]"),
    ("condition_dtype", "expected to be a float tensor but is a double"),
    ("image_channels", "image must be [batch, 64, 64, 3]"),
    ("undecodable", "Unknown image file format"),
    ("steps_too_many", f"steps must be in [0, max_steps={MAX_STEPS}]"),
])
def test_bad_image_requests_fail_clearly(image_served, call, message):
    assert message in image_served[call].get("error", "no error")


def test_undecodable_bytes_name_the_input(image_served):
    assert "decode_condition_bytes" in image_served["undecodable"]["error"]


@pytest.mark.slow
def test_masked_task_takes_rgba_with_transparent_hole(tmp_path):
    from cooperative_tf import factory, serving, tasks

    config = tasks.resolve_config("facades_inpaint", overrides=TINY + [
        "data.image_size=16", "data.load_size=16", "data.mask_size=8",
        "model.policy_filters=4:8", "model.planner_filters=4:8"])
    trainer = factory.build_trainer(config)
    path = serving.export_trainer(trainer, config, str(tmp_path), "inpaint")
    loaded = tf.saved_model.load(path)
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, [16, 16, 3], dtype=np.uint8)
    alpha = np.full([16, 16, 1], 255, np.uint8)
    alpha[4:12, 4:12] = 0  # transparent: the hole
    rgba = tf.io.encode_png(np.concatenate([pixels, alpha], -1)).numpy()
    photo = pixels.astype(np.float32) / 127.5 - 1
    hole = (alpha == 0).astype(np.float32)
    condition = np.concatenate([photo * (1 - hole), 2 * hole - 1], -1)
    from_bytes = loaded.signatures["serving_bytes"](
        condition_bytes=tf.constant([rgba]), seed=tf.constant([3], tf.int64))
    from_floats = loaded.signatures["serving_default"](
        condition=tf.constant(condition[None]),
        seed=tf.constant([3], tf.int64))
    assert_close(from_bytes["image"], from_floats["image"])
    fast, _ = eager(trainer, condition[None], [3])
    assert_close(from_floats["image"], fast)


if __name__ == "__main__":
    sys.exit(_serve_main(*sys.argv[1:]))
