"""Shared test settings: quiet TensorFlow, find the real datasets, tiny shapes."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# No test reads or writes this user's autotune cache (tests of the cache
# point it at a temporary folder).
os.environ["COOPERATIVE_TF_CACHE"] = "off"

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
# One setting for where the real datasets live; CI has ../shared beside the clone.
DATA_ROOT = pathlib.Path(
    os.environ.get("COOPERATIVE_TF_DATA", str(REPO.parent / "shared" / "data")))


def shared_data(*parts: str) -> pathlib.Path:
    """Returns a path under the shared datasets, skipping the test if absent."""
    path = DATA_ROOT.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: set COOPERATIVE_TF_DATA to the folder "
                    "holding the real datasets (mnist, cifar10, facades, "
                    "edges2shoes, cufs) to run this test")
    return path


@pytest.fixture
def data_root() -> pathlib.Path:
    return shared_data()
