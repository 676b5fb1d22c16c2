"""Repositories that let `bazel test //...` run offline with the Python
environment cooperative_tf is installed in (`pip install -e '.[cpu,test]'`).

Debian's Bazel 4.2.3 (`bazel-bootstrap`) builds Python rules natively but
would download `rules_cc`, `remote_coverage_tools` and `rules_python`; the
BUILD file's `@pypi//<name>` labels would need a pip-resolving rule. Here
each is a small generated repository instead:

* `local_python`: a Python toolchain whose interpreter is the `python3` on
  PATH when Bazel first fetches it (or `$PYTHON_BIN_PATH`), so tests see
  the packages of the active virtual environment;
* `pypi`: one empty `py_library` per name the BUILD file uses; the code
  comes from that interpreter's site-packages, checked to be importable
  when the repository is made;
* `rules_python`: `python/defs.bzl` re-exporting the native `py_*` rules;
* `rules_cc`, `remote_coverage_tools`: what Bazel's own tools load, with
  no compiler work (nothing here is C++) and no coverage merging.
"""

def _interpreter(ctx):
    path = ctx.os.environ.get("PYTHON_BIN_PATH") or ctx.which("python3")
    if not path:
        fail("No python3 on PATH: activate the environment cooperative_tf " +
             "is installed in (or set PYTHON_BIN_PATH), then rerun bazel.")
    return str(path)

def _local_python_impl(ctx):
    python = _interpreter(ctx)
    ctx.file("WORKSPACE", "workspace(name = \"local_python\")\n")
    ctx.file("BUILD", """
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "python3",
    interpreter_path = "{python}",
    python_version = "PY3",
)

py_runtime_pair(name = "runtime_pair", py3_runtime = ":python3")

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(python = python))

local_python = repository_rule(
    implementation = _local_python_impl,
    environ = ["PATH", "PYTHON_BIN_PATH"],
    local = True,
)

def _pypi_impl(ctx):
    python = _interpreter(ctx)
    modules = ctx.attr.packages
    check = ctx.execute([python, "-c", "\n".join([
        "import importlib.util, sys",
        "missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]",
        "print(' '.join(missing))",
    ])] + modules.values())
    if check.return_code or check.stdout.strip():
        fail(("{python} cannot import {missing}: install the project into " +
              "that environment first (pip install -e '.[cpu,test]').").format(
            python = python,
            missing = check.stdout.strip() or check.stderr,
        ))
    ctx.file("WORKSPACE", "workspace(name = \"pypi\")\n")
    for name in modules:
        # Empty: the module is imported from the interpreter's packages.
        ctx.file(name + "/BUILD", ("py_library(name = \"{name}\", " +
                                   "visibility = [\"//visibility:public\"])\n")
            .format(name = name))

pypi = repository_rule(
    implementation = _pypi_impl,
    attrs = {"packages": attr.string_dict(
        doc = "BUILD name (@pypi//<name>) -> the module it provides.",
    )},
    environ = ["PATH", "PYTHON_BIN_PATH"],
    local = True,
)

def _files_impl(ctx):
    ctx.file("WORKSPACE", "workspace(name = \"{}\")\n".format(ctx.name))
    for path, text in ctx.attr.files.items():
        ctx.file(path, text)

files_repository = repository_rule(
    implementation = _files_impl,
    attrs = {"files": attr.string_dict()},
)

def _native_rules_impl(ctx):
    ctx.file("WORKSPACE", "workspace(name = \"{}\")\n".format(ctx.name))
    ctx.file("BUILD", "")
    ctx.file(ctx.attr.package + "/BUILD", ctx.attr.build)
    ctx.file(ctx.attr.package + "/defs.bzl", "".join([
        "def {0}(**kwargs):\n    native.{0}(**kwargs)\n".format(rule)
        for rule in ctx.attr.rules
    ]))

native_rules_repository = repository_rule(
    implementation = _native_rules_impl,
    doc = "`<package>/defs.bzl` re-exporting Bazel's native `rules`.",
    attrs = {
        "package": attr.string(),
        "rules": attr.string_list(),
        "build": attr.string(doc = "The package's BUILD file."),
    },
)

_PUBLIC = "package(default_visibility = [\"//visibility:public\"])\n"

def cooperative_tf_repositories(packages):
    """Every repository the WORKSPACE needs, none downloaded.

    Args:
      packages: `@pypi//<name>` -> the Python module it provides.
    """
    local_python(name = "local_python")
    native.register_toolchains("@local_python//:toolchain")
    pypi(name = "pypi", packages = packages)
    native_rules_repository(
        name = "rules_python",
        package = "python",
        rules = ["py_binary", "py_library", "py_test"],
    )

    # What Bazel's own tools load (C++, Java, protobuf rules): native rules,
    # re-exported; nothing here compiles any of those languages.
    native_rules_repository(
        name = "rules_cc",
        package = "cc",
        rules = [
            "cc_binary",
            "cc_import",
            "cc_library",
            "cc_proto_library",
            "cc_test",
            "cc_toolchain",
            "cc_toolchain_suite",
            "objc_library",
        ],
        build = _PUBLIC + "alias(name = \"toolchain_type\", " +
                "actual = \"@bazel_tools//tools/cpp:toolchain_type\")\n",
    )
    native_rules_repository(
        name = "rules_java",
        package = "java",
        rules = [
            "java_binary",
            "java_import",
            "java_library",
            "java_lite_proto_library",
            "java_plugin",
            "java_proto_library",
            "java_runtime",
            "java_test",
            "java_toolchain",
        ],
    )
    native_rules_repository(
        name = "rules_proto",
        package = "proto",
        rules = ["proto_lang_toolchain", "proto_library"],
    )

    # Test rules name a coverage merger; with no coverage runs, a no-op.
    files_repository(
        name = "remote_coverage_tools",
        files = {
            "noop.sh": "#!/bin/sh\nexit 0\n",
            "BUILD": _PUBLIC + "".join([
                "sh_binary(name = \"{}\", srcs = [\"noop.sh\"])\n".format(n)
                for n in ("coverage_report_generator", "lcov_merger")
            ]),
        },
    )
