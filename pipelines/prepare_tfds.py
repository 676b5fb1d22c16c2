"""Prepares a paired TFDS dataset from local files, offline.

  python -m pipelines.prepare_tfds --name pix2pix_pairs/facades \
      --manual_dir ../shared/data --data_dir ~/tensorflow_datasets

(A separate module from `pipelines.tfds_builders` because TFDS cannot build
a dataset whose builder class lives in `__main__`.)
"""

from __future__ import annotations

import argparse

from pipelines import tfds_builders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True,
                        help="pix2pix_pairs/facades, pix2pix_pairs/edges2shoes,"
                             " pix2pix_pairs/edges2handbags, cufs_pairs or "
                             "zappos_pairs")
    parser.add_argument("--manual_dir", required=True,
                        help="folder holding <config>/<split>/... files "
                             "(cufs/..., zappos/... for those)")
    parser.add_argument("--data_dir", required=True,
                        help="TFDS data folder to write the dataset into")
    args = parser.parse_args()
    builder = tfds_builders.prepare(args.name, args.manual_dir, args.data_dir)
    print({split: info.num_examples
           for split, info in builder.info.splits.items()})


if __name__ == "__main__":
    main()
