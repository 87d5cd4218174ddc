"""``hf-galaxy prepare``: load a catalogue with ``load_galaxy_dataset`` and save the DatasetDict."""

from __future__ import annotations

import argparse
import sys

HELP = "convert a Galaxy Zoo catalogue (+ cutouts) or image folder into a saved Hugging Face DatasetDict"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("catalog", help="catalogue file (CSV/Parquet/FITS/HDF5) or image folder")
    parser.add_argument("--image-dir", default=None, help="folder with the cutouts")
    parser.add_argument("--output", "-o", default=None, help="save the DatasetDict here (save_to_disk)")
    parser.add_argument("--format", default="auto", help="catalogue layout (default: auto-detect)")
    parser.add_argument(
        "--label-scheme", default="plurality", choices=["plurality", "clean", "votes", "column"]
    )
    parser.add_argument("--label-column", default=None)
    parser.add_argument("--question", default=None, help="decision-tree question, e.g. has-spiral-arms")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument(
        "--classes",
        default=None,
        help="comma-separated class names, a preset (e.g. elliptical-spiral-other) or JSON mapping",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--num-proc", type=int, default=None)
    parser.add_argument("--strict", action="store_true", help="stop at the first bad row or image")
    parser.add_argument("--grid", default=None, help="also write a sample-grid PNG here")


def run(args: argparse.Namespace) -> int:
    from hf_galaxy.data.catalogs import CatalogError
    from hf_galaxy.data.dataset import ImageError
    from hf_galaxy.data.labels import LabelError

    try:
        return _run(args)
    except (CatalogError, LabelError, ImageError, ValueError) as err:
        print(f"hf-galaxy prepare: error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from hf_galaxy.data.dataset import load_galaxy_dataset
    from hf_galaxy.data.labels import parse_classes

    dsd = load_galaxy_dataset(
        args.catalog,
        args.image_dir,
        format=args.format,
        label_scheme=args.label_scheme,
        label_column=args.label_column,
        question=args.question,
        threshold=args.threshold,
        classes=parse_classes(args.classes),
        seed=args.seed,
        image_size=args.image_size,
        cache_dir=args.cache_dir,
        num_proc=args.num_proc,
        strict=args.strict,
    )
    print(dsd)
    print(dsd.report.summary())
    if args.output:
        dsd.save_to_disk(args.output)
        print(f"saved to {args.output}")
    if args.grid:
        from hf_galaxy.plots import sample_grid

        sample_grid(dsd["train"], args.grid)
        print(f"sample grid: {args.grid}")
    return 0
