"""The speed benchmark (not installed with the library).

Run from the repository root: `python -m bench [--quick] [--only=...]`; see
`bench.runner` and docs/benchmark.md.
"""
