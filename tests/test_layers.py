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
        "pipelines.tfds_reader", "pipelines.synthetic", "pipelines.spec")
    assert not {m for m in loaded if m.split(".")[0] in (
        "cooperative_tf", "bench", "tools")}


def test_the_library_imports_neither_the_benchmark_nor_the_launcher():
    loaded = _modules_loaded_by(
        "cooperative_tf", "cooperative_tf.train_lib", "cooperative_tf.serving",
        "cooperative_tf.tasks")
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
