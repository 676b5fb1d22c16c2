"""Draws `docs/edges_vs_pix2pix.png`: photo | our edge map | pix2pix's.

  python -m tools.make_edges_figure --data ../shared/data

Rows are the first shoes of `edges2shoes/val` (the detector's thresholds
were tuned on `train`). Also prints the dark-pixel fractions and how many of
our line pixels lie within 2 px of a real line.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import tensorflow as tf
from PIL import Image

from pipelines import edges

FIGURE = (pathlib.Path(__file__).resolve().parents[1] / "docs"
          / "edges_vs_pix2pix.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, required=True,
                        help="folder holding edges2shoes/")
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--size", type=int, default=128,
                        help="side of each panel in the figure")
    args = parser.parse_args()

    paths = sorted((args.data / "edges2shoes" / "val").glob("*_AB.jpg"))
    pairs = np.stack([np.asarray(Image.open(p).convert("RGB"))
                      for p in paths[:args.rows]])
    real, photos = pairs[:, :, :256], pairs[:, :, 256:]
    ours = edges.edge_map(tf.constant(photos, tf.float32) / 127.5 - 1.0, 3)
    ours = np.round((ours.numpy() + 1.0) * 127.5).astype(np.uint8)

    ours_dark, real_dark = ours[..., 0] < 128, real.mean(-1) < 128
    near = tf.nn.max_pool2d(tf.constant(real_dark[..., None], tf.float32),
                            5, 1, "SAME").numpy()[..., 0] > 0
    print(f"dark pixels: ours {ours_dark.mean():.4f}, "
          f"pix2pix {real_dark.mean():.4f}; ours within 2 px of a real line: "
          f"{(ours_dark & near).sum() / ours_dark.sum():.2f} "
          f"(chance {near.mean():.2f})")

    rows = [np.concatenate([photos[i], ours[i], real[i]], axis=1)
            for i in range(len(paths[:args.rows]))]
    gap = np.full([4, rows[0].shape[1], 3], 160, np.uint8)
    grid = np.concatenate([part for row in rows for part in (row, gap)][:-1])
    figure = Image.fromarray(grid)
    scale = args.size / 256
    figure = figure.resize((int(grid.shape[1] * scale),
                            int(grid.shape[0] * scale)), Image.LANCZOS)
    figure.save(FIGURE, optimize=True)
    print(f"wrote {FIGURE} (columns: photo | ours | pix2pix HED)")


if __name__ == "__main__":
    main()
