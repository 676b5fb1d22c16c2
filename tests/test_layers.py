"""Imports point one way: pipelines and networks at the bottom, the
benchmark and the command line on top, nothing imported from above."""

import ast
import subprocess
import sys

from conftest import REPO


def _modules_loaded_by(*modules):
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, cwd=REPO, timeout=300,
                         env={"TF_CPP_MIN_LOG_LEVEL": "2",
                              "PYTHONPATH": str(REPO),
                              "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    return set(out.stdout.split())


def test_pipelines_import_nothing_from_the_library():
    loaded = _modules_loaded_by(
        "pipelines", "pipelines.dataset", "pipelines.readers",
        "pipelines.readers_digits", "pipelines.readers_images",
        "pipelines.splits", "pipelines.tfds_reader", "pipelines.synthetic",
        "pipelines.spec")
    assert not {m for m in loaded if m.split(".")[0] in (
        "cooperative_tf", "bench", "tools")}


def test_the_library_imports_neither_the_benchmark_nor_the_launcher():
    loaded = _modules_loaded_by(
        "cooperative_tf", "cooperative_tf.train_lib", "cooperative_tf.eval_lib",
        "cooperative_tf.serving", "cooperative_tf.tasks")
    assert "cooperative_tf.launch" not in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("bench", "tools")}


def _imports(path):
    """The modules a source file imports (at any depth in the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}"
                                      for alias in node.names}
    return names


def test_networks_import_only_networks():
    for path in sorted((REPO / "cooperative_tf" / "models").glob("*.py")):
        ours = {m for m in _imports(path) if m.startswith("cooperative_tf")}
        assert all(m.startswith("cooperative_tf.models") for m in ours), (
            path.name, ours)


def test_pipelines_files_import_nothing_above_them():
    for path in sorted((REPO / "pipelines").glob("*.py")):
        assert not {m for m in _imports(path) if m.split(".")[0] in (
            "cooperative_tf", "bench", "tools")}, path.name


def test_the_data_spec_names_every_reader():
    from pipelines import readers, spec

    assert sorted(readers.READERS) == sorted(spec.READER_NAMES)


# The library's modules from the bottom up; a module imports only from its
# own layer or below. A new module must be placed here.
LAYERS = [
    # data and networks
    ("pipelines", "cooperative_tf.models"),
    # the maths and small helpers
    ("cooperative_tf.langevin", "cooperative_tf.losses",
     "cooperative_tf.metrics", "cooperative_tf.parzen",
     "cooperative_tf.images", "cooperative_tf.distribute",
     "cooperative_tf.callbacks", "cooperative_tf.safety",
     "cooperative_tf.workdir_lock", "cooperative_tf.seeds",
     "cooperative_tf.summaries", "cooperative_tf.replicated",
     "cooperative_tf.plots", "cooperative_tf.averaging"),
    # the trainer (Algorithm 1) and the baselines, the configs, the judge
    # classifier, where the label stage begins
    ("cooperative_tf.trainer", "cooperative_tf.baselines",
     "cooperative_tf.config", "cooperative_tf.config_io",
     "cooperative_tf.execution", "cooperative_tf.classifier",
     "cooperative_tf.label_stage"),
    # registered tasks and their public data, quality metrics of a run, the
    # planner at inference
    ("cooperative_tf.tasks", "cooperative_tf.public_data",
     "cooperative_tf.quality", "cooperative_tf.inference",
     "cooperative_tf.sampling"),
    # networks and trainer from a config; the files of a work directory;
    # the execution path timed on this machine
    ("cooperative_tf.factory", "cooperative_tf.workdir",
     "cooperative_tf.autotune"),
    # evaluation, figures, serving
    ("cooperative_tf.eval_lib", "cooperative_tf.figures",
     "cooperative_tf.inference_report", "cooperative_tf.serving"),
    # training
    ("cooperative_tf.train_lib",),
    # the command line: one run, the reproduction
    ("cooperative_tf.launch", "cooperative_tf.reproduce"),
]


def _layer(module):
    """The layer of `module`: that of its longest listed prefix."""
    best = None
    for depth, names in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                if best is None or len(name) > len(best[1]):
                    best = (depth, name)
    return None if best is None else best[0]


def test_every_module_imports_only_its_layer_and_below():
    files = sorted((REPO / "cooperative_tf").rglob("*.py")) + sorted(
        (REPO / "pipelines").glob("*.py"))
    for path in files:
        parts = path.relative_to(REPO).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if module == "cooperative_tf":  # the package's public API
            continue
        own = _layer(module)
        assert own is not None, f"{module} is in no layer of LAYERS"
        for imported in _imports(path):
            if imported.split(".")[0] not in ("cooperative_tf", "pipelines"):
                continue
            if imported in ("cooperative_tf", "pipelines"):
                continue  # the package itself; its modules are named too
            theirs = _layer(imported)
            if theirs is None:  # `from x import name`: a name, not a module
                continue
            assert theirs <= own, (
                f"{module} (layer {own}) imports {imported} (layer {theirs})")


def test_the_factory_builds_every_policy_the_config_accepts():
    from cooperative_tf import factory, models

    assert sorted(factory.POLICIES) == sorted(models.POLICY_CONDITIONS)
