r"""Writes the example TF Serving REST requests in `launch/serving/requests/`.

One `predict` request per exported signature, in both of TF Serving's JSON
formats: `<task>/<signature>.row.json` (`instances`, a list of per-example
objects) and `<task>/<signature>.columnar.json` (`inputs`, an object of
batched lists). Conditions and answers are real examples of the embedded
samples (`pipelines/sample`), prepared by the evaluation pipeline; encoded
images are base64 (`{"b64": ...}`), as the REST API requires.

    PYTHONPATH=. python launch/serving/make_requests.py        # write files
    PYTHONPATH=. python launch/serving/make_requests.py --doc  # print the
        # markdown request section of docs/serving.md

`abbreviate` turns a request into the short form `docs/serving.md` shows;
`tests/test_serving_module.py` checks that the doc shows exactly these files.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
REQUEST_DIR = HERE / "requests"
# Requests name the models of `models.config`.
TASKS = ("mnist", "zappos")
# Lists holding more numbers than this, and base64 strings longer than this,
# are elided in the doc.
MAX_SHOWN_NUMBERS = 12
MAX_SHOWN_B64 = 24


def _floats(array, decimals=2):
    """Nested lists of floats rounded for a compact but exact-enough file."""
    return [[[round(float(v), decimals) for v in pixel] for pixel in row]
            for row in array]


def _b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode("ascii")}


def _examples(task: str, count: int):
    """`count` (condition, target) pairs of the task's embedded sample."""
    import numpy as np

    import pipelines
    from cooperative_tf import tasks

    data = tasks.resolve_config(task).data
    batch = next(iter(pipelines.build_dataset(data, data.eval_split, count,
                                              training=False, repeat=False)))
    return np.asarray(batch["condition"]), np.asarray(batch["target"])


def _png(image) -> bytes:
    import tensorflow as tf

    pixels = tf.cast(tf.round((tf.constant(image) + 1.0) * 127.5), tf.uint8)
    return tf.io.encode_png(pixels).numpy()


def _jpeg(image) -> bytes:
    import tensorflow as tf

    pixels = tf.cast(tf.round((tf.constant(image) + 1.0) * 127.5), tf.uint8)
    return tf.io.encode_jpeg(pixels, quality=90).numpy()


def build_requests() -> dict:
    """`{(task, signature): columns}`, each input a batched list."""
    requests = {}
    # mnist: labels are class ids; seed -1 asks for a random answer, whose
    # seed comes back in the `seed` output.
    _, digits = _examples("mnist", 2)
    labels = [3, 7]
    steps, step_size = [10, 20], [0.002, 0.002]
    requests["mnist", "serving_default"] = {"label": labels, "seed": [42, -1]}
    requests["mnist", "refine"] = {"label": labels, "seed": [42, 43],
                                   "steps": steps, "step_size": step_size}
    # The eval split's first digit, scored as a 3 (its true class or not, a
    # value to compare with other answers for the same label).
    requests["mnist", "energy"] = {"image": [_floats(digits[0])],
                                   "label": [3]}
    requests["mnist", "energy_bytes"] = {
        "image_bytes": [_b64(_png(d)) for d in digits], "label": labels}

    # zappos: edge maps as the networks see them (float, one example, to
    # keep the files small) or as PNG files; photos as JPEG.
    edges, photos = _examples("zappos", 2)
    edge_png = [_b64(_png(e)) for e in edges]
    requests["zappos", "serving_default"] = {
        "condition": [_floats(edges[0])], "seed": [42]}
    requests["zappos", "refine"] = {
        "condition": [_floats(edges[0])], "seed": [42], "steps": [20],
        "step_size": [0.002]}
    requests["zappos", "energy"] = {"image": [_floats(photos[0])],
                                    "condition": [_floats(edges[0])]}
    requests["zappos", "serving_bytes"] = {"condition_bytes": edge_png,
                                           "seed": [42, -1]}
    requests["zappos", "refine_bytes"] = {
        "condition_bytes": edge_png, "seed": [42, 43], "steps": [0, 20],
        "step_size": [0.002, 0.002]}
    requests["zappos", "energy_bytes"] = {
        "image_bytes": [_b64(_jpeg(p)) for p in photos],
        "condition_bytes": edge_png}
    return requests


def row_format(signature: str, columns: dict) -> dict:
    """`{"signature_name", "instances": [{input: value}, ...]}`."""
    batch = len(next(iter(columns.values())))
    return {"signature_name": signature,
            "instances": [{name: values[i] for name, values in columns.items()}
                          for i in range(batch)]}


def columnar_format(signature: str, columns: dict) -> dict:
    """`{"signature_name", "inputs": {input: [values]}}`."""
    return {"signature_name": signature, "inputs": dict(columns)}


SIGNATURE_ORDER = ("serving_default", "refine", "energy", "serving_bytes",
                   "refine_bytes", "energy_bytes")


def request_files() -> list:
    """Paths of the request files relative to the repository, by task, then
    signature, row format first: the order the doc shows them in."""
    def order(path):
        signature, form, _ = path.name.split(".")
        return (path.parent.name, SIGNATURE_ORDER.index(signature),
                form != "row")

    return [str(p.relative_to(HERE.parent.parent))
            for p in sorted(REQUEST_DIR.glob("*/*.json"), key=order)]


def abbreviate(value):
    """The request as the doc shows it: long number lists and base64
    strings elided, everything else (names, formats, scalars) verbatim."""
    if isinstance(value, dict):
        if set(value) == {"b64"} and len(value["b64"]) > MAX_SHOWN_B64:
            return {"b64": value["b64"][:MAX_SHOWN_B64] + "..."}
        return {k: abbreviate(v) for k, v in value.items()}
    if isinstance(value, list):
        numbers = _count_numbers(value)
        if numbers is not None and numbers > MAX_SHOWN_NUMBERS:
            return f"<{_shape(value)} numbers>"
        return [abbreviate(v) for v in value]
    return value


def _count_numbers(value):
    """How many numbers a nested list holds; None if it holds anything else."""
    if isinstance(value, list):
        counts = [_count_numbers(v) for v in value]
        return None if None in counts else sum(counts)
    return 1 if isinstance(value, (int, float)) else None


def _shape(value) -> str:
    dims = []
    while isinstance(value, list):
        dims.append(len(value))
        value = value[0] if value else None
    return "x".join(str(d) for d in dims)


def to_text(value, indent: int = 0, width: int = 76) -> str:
    """JSON with short lists and objects kept on one line."""
    flat = json.dumps(value)
    if len(flat) + indent <= width or not isinstance(value, (dict, list)):
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {to_text(v, indent + 2, width)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + to_text(v, indent + 2, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def doc_section() -> str:
    """The markdown list of requests in docs/serving.md."""
    lines = []
    for path in request_files():
        with open(HERE.parent.parent / path) as f:
            request = json.load(f)
        lines += [f"`{path}`:", "", "```json", to_text(abbreviate(request)),
                  "```", ""]
    return "\n".join(lines)


def main(argv) -> int:
    if "--doc" in argv:
        print(doc_section())
        return 0
    for (task, signature), columns in build_requests().items():
        folder = REQUEST_DIR / task
        folder.mkdir(parents=True, exist_ok=True)
        for suffix, make in (("row", row_format),
                             ("columnar", columnar_format)):
            with open(folder / f"{signature}.{suffix}.json", "w") as f:
                json.dump(make(signature, columns), f,
                          separators=(",", ":"))
                f.write("\n")
    print(f"Wrote {len(request_files())} requests under {REQUEST_DIR}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main(sys.argv[1:]))
