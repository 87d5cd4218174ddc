"""Catalogue stage at survey scale: rows/s of read + labels + splits, and time to the first streamed example.

Writes a GZ DECaLS-5 volunteer table of N rows (the columns of ``tests/fixtures/catalogs/gz_decals_volunteers_5.csv``,
rows drawn from its 10 real rows with new unique ids, every ``file_loc`` pointing at one small JPEG), then times,
in one process and for each N:

- ``pandas.read_csv`` of the file (the reference);
- ``read_catalog`` (reading, id/RA/Dec parsing, vote maths, path resolution);
- ``make_labels`` + ``assign_splits`` (label scheme and split hashing);
- ``load_galaxy_dataset(streaming=True)`` until its first training example is yielded;

and prints rows/s, the ratio of the time to the first streamed example to ``pandas.read_csv``, and the peak
resident memory growth of each step::

    python benchmarks/bench_catalog.py --rows 10000 100000 1000000

Issue 11's target is a ratio of at most 10 at 10^6 rows, with memory that grows linearly.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

FIXTURE = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "catalogs" / "gz_decals_volunteers_5.csv"
)


def write_table(n: int, folder: Path) -> Path:
    """A GZ DECaLS-5 volunteer table of ``n`` rows built from the fixture's rows, all images one JPEG."""
    from PIL import Image

    base = pd.read_csv(FIXTURE)
    image = folder / "galaxy.jpg"
    Image.new("RGB", (64, 64), (90, 70, 50)).save(image)
    rows = base.iloc[np.arange(n) % len(base)].reset_index(drop=True)
    rows["iauname"] = [f"J{i:012d}" for i in range(n)]
    rows["png_loc"] = str(image)
    path = folder / f"gzd5_{n}.csv"
    rows.to_csv(path, index=False)
    return path


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(n: int, folder: Path) -> dict[str, float]:
    from hf_galaxy import load_galaxy_dataset
    from hf_galaxy.data.catalogs import read_catalog
    from hf_galaxy.data.dataset import assign_splits
    from hf_galaxy.data.labels import make_labels

    path = write_table(n, folder)
    out: dict[str, float] = {"rows": n}
    start_mem = _peak_mib()
    t = time.perf_counter()
    pd.read_csv(path)
    out["pandas_read_csv_s"] = time.perf_counter() - t
    t = time.perf_counter()
    cat = read_catalog(path)
    out["read_catalog_s"] = time.perf_counter() - t
    t = time.perf_counter()
    lab = make_labels(cat, question="smooth-or-featured")
    assign_splits(lab.labels, lab.table["id"].astype(str).to_numpy(), 0)
    out["labels_and_splits_s"] = time.perf_counter() - t
    del cat, lab
    t = time.perf_counter()
    stream = load_galaxy_dataset(path, question="smooth-or-featured", streaming=True)
    next(iter(stream["train"]))
    out["first_streamed_example_s"] = time.perf_counter() - t
    out["catalogue_rows_per_s"] = n / (out["read_catalog_s"] + out["labels_and_splits_s"])
    out["ratio_first_example_to_read_csv"] = out["first_streamed_example_s"] / out["pandas_read_csv_s"]
    out["peak_rss_growth_mib"] = _peak_mib() - start_mem
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure(100, Path(tmp))  # warm-up: imports and first-call set-up are not the catalogue's cost
        for n in args.rows:
            print(json.dumps(measure(n, Path(tmp))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
