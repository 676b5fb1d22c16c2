"""The table of readers (`pipelines.readers`).

The readers themselves: `test_pipelines_readers_digits.py` and
`test_pipelines_readers_images.py`; that the table names every reader of
the data spec: `test_layers.py`.
"""

import pytest

from cooperative_tf.config import DataConfig
from pipelines import readers


def test_unknown_reader_is_named():
    with pytest.raises(ValueError, match="Received: data.reader='hdf5'"):
        readers.load_source(DataConfig(reader="hdf5"), "train")
