"""Rebuilds the embedded samples in `pipelines/sample/` from the real data.

  python -m tools.make_samples --data ../shared/data

* `sample/zappos/{train,val}/Shoes/edges2shoes/<id>.jpg`: the photo (right)
  halves of `edges2shoes/{train,val}/<id>_AB.jpg`, 256 x 256 JPEG.
* `sample/mnist/mnist_1k.csv.gz`: the first 100 rows of each digit of
  `mnist/mnist_5k.csv.gz` (that file is sorted by class, so its first 1000
  rows would hold only zeros and ones), rows copied byte for byte.

The outputs are byte-for-byte reproducible (fixed JPEG settings, gzip
without a timestamp).
"""

from __future__ import annotations

import argparse
import gzip
import pathlib

from PIL import Image

SAMPLE = pathlib.Path(__file__).resolve().parents[1] / "pipelines" / "sample"
JPEG_QUALITY = 85
ROWS_PER_CLASS = 100


def make_zappos(data: pathlib.Path) -> int:
    count = 0
    for split in ("train", "val"):
        out = SAMPLE / "zappos" / split / "Shoes" / "edges2shoes"
        out.mkdir(parents=True, exist_ok=True)
        for pair_path in sorted((data / "edges2shoes" / split).glob("*_AB.jpg")):
            with Image.open(pair_path) as pair:
                pair = pair.convert("RGB")
                width, height = pair.size
                photo = pair.crop((width // 2, 0, width, height))
            name = pair_path.name.replace("_AB", "")
            photo.save(out / name, "JPEG", quality=JPEG_QUALITY, optimize=True)
            count += 1
    return count


def make_mnist(data: pathlib.Path) -> int:
    with gzip.open(data / "mnist" / "mnist_5k.csv.gz", "rt") as handle:
        lines = handle.read().splitlines()
    kept, per_class = [], {}
    for line in lines:
        label = line.rsplit(",", 1)[1]
        if per_class.get(label, 0) < ROWS_PER_CLASS:
            per_class[label] = per_class.get(label, 0) + 1
            kept.append(line)
    out = SAMPLE / "mnist"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "mnist_1k.csv.gz", "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(("\n".join(kept) + "\n").encode("ascii"))
    return len(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, required=True,
                        help="folder holding edges2shoes/ and mnist/")
    args = parser.parse_args()
    print(f"zappos: {make_zappos(args.data)} photos")
    print(f"mnist: {make_mnist(args.data)} rows")


if __name__ == "__main__":
    main()
