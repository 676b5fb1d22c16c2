"""Sample grids: condition | fast answer | refined answer | ground truth."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import tensorflow as tf


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Maps `[..., H, W, C]` in [-1, 1] to uint8 RGB `[..., H, W, 3]`."""
    images = np.asarray(images, np.float32)
    images = np.clip((images + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    elif images.shape[-1] == 4:  # masked photo + mask: show the photo
        images = images[..., :3]
    elif images.shape[-1] == 2:
        images = np.repeat(images[..., :1], 3, axis=-1)
    return images


def grid(columns: Sequence[np.ndarray], pad: int = 2) -> np.ndarray:
    """Tiles equally long image batches side by side.

    Args:
      columns: Each `[rows, H, W, C]` in [-1, 1]; column j of the grid is
        `columns[j]`. All must share rows, H and W.
      pad: White pixels between tiles.

    Returns:
      uint8 `[rows * (H + pad) + pad, cols * (W + pad) + pad, 3]`.
    """
    tiles = [to_uint8(c) for c in columns]
    rows, h, w, _ = tiles[0].shape
    for t in tiles:
        if t.shape[:3] != (rows, h, w):
            raise ValueError("All grid columns need the same [rows, H, W]. "
                             f"Received: shapes={[x.shape for x in tiles]}")
    out = np.full((rows * (h + pad) + pad, len(tiles) * (w + pad) + pad, 3),
                  255, np.uint8)
    for j, t in enumerate(tiles):
        for i in range(rows):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = t[i]
    return out


def write_png(path: str, image: np.ndarray) -> None:
    """Writes a uint8 `[H, W, 3]` image atomically (temp file + rename)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    tf.io.write_file(tmp, tf.io.encode_png(image))
    os.replace(tmp, path)
