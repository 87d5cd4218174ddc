"""Benchmark: preparing Galaxy Zoo cutouts with load_galaxy_dataset vs the naive datasets path.

Prepares N synthetic 424² galaxies stored at 224² with 1 and 2 processes (fresh cache each time), and,
in the same run, the naive path: an image folder loaded with ``datasets.load_dataset("imagefolder")``
plus a ``map`` that resizes every image with PIL. Prints images/s and the ratio.

    python benchmarks/bench_prepare.py --n 5000 --size 224
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace


def _timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="number of synthetic galaxies")
    parser.add_argument("--size", type=int, default=224, help="stored image size")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts to time")
    parser.add_argument("--workdir", default=None, help="keep the synthetic data here (default: temp dir)")
    args = parser.parse_args()
    logging.getLogger("hf_galaxy").setLevel(logging.ERROR)

    import datasets
    from PIL import Image

    from hf_galaxy import load_galaxy_dataset
    from hf_galaxy.data.synthetic import make_galaxy_zoo

    datasets.disable_progress_bars()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_prepare_"))
    data = work / "data"
    if not (data / "catalog.csv").exists():
        zoo, secs = _timed(
            lambda: make_galaxy_zoo(data, args.n, seed=0, num_proc=max(args.procs), show_progress=False)
        )
        print(f"synthesised {args.n} galaxies at 424² in {secs:.1f} s ({args.n / secs:.0f} images/s)")
    else:
        zoo = SimpleNamespace(catalog_path=data / "catalog.csv", image_dir=data / "images")
        print(f"reusing the synthetic galaxies in {data}")

    rows = []
    for p in args.procs:
        cache = work / f"cache_p{p}"
        shutil.rmtree(cache, ignore_errors=True)
        dsd, secs = _timed(
            lambda p=p, cache=cache: load_galaxy_dataset(
                zoo.catalog_path, zoo.image_dir, image_size=args.size, cache_dir=cache, num_proc=p
            )
        )
        n = sum(len(d) for d in dsd.values())
        rows.append((f"load_galaxy_dataset, num_proc={p}", n, secs))
        _, again = _timed(
            lambda p=p, cache=cache: load_galaxy_dataset(
                zoo.catalog_path, zoo.image_dir, image_size=args.size, cache_dir=cache, num_proc=p
            )
        )
        rows.append((f"  same call again (cache hit), num_proc={p}", n, again))

    naive_cache = work / "cache_naive"
    shutil.rmtree(naive_cache, ignore_errors=True)

    def naive(num_proc: int | None):
        ds = datasets.load_dataset(
            "imagefolder", data_dir=str(zoo.image_dir), split="train", cache_dir=str(naive_cache)
        )

        def resize(batch):
            batch["image"] = [
                im.convert("RGB").resize((args.size, args.size), Image.Resampling.LANCZOS)
                for im in batch["image"]
            ]
            return batch

        return ds.map(resize, batched=True, batch_size=64, num_proc=num_proc)

    for p in args.procs:
        shutil.rmtree(naive_cache, ignore_errors=True)
        ds, secs = _timed(lambda p=p: naive(p if p > 1 else None))
        rows.append((f"naive imagefolder + PIL resize map, num_proc={p}", len(ds), secs))

    print(f"\n{'path':<48} {'images':>7} {'seconds':>8} {'images/s':>9}")
    for name, n, secs in rows:
        print(f"{name:<48} {n:>7} {secs:>8.2f} {n / secs:>9.0f}")
    ours = {r[0]: r for r in rows}
    for p in args.procs:
        a = ours[f"load_galaxy_dataset, num_proc={p}"]
        b = ours[f"naive imagefolder + PIL resize map, num_proc={p}"]
        print(f"speed-up over the naive path at num_proc={p}: {(a[1] / a[2]) / (b[1] / b[2]):.2f}x")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
