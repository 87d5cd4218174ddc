"""``hf-galaxy prepare``: load a catalogue with ``load_galaxy_dataset`` and save the DatasetDict."""

from __future__ import annotations

import argparse

HELP = "convert a Galaxy Zoo catalogue (+ cutouts) or image folder into a saved Hugging Face DatasetDict"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hf_galaxy.commands import add_dataclass_arguments
    from hf_galaxy.training import DatasetArguments

    parser.add_argument(
        "catalog",
        help="catalogue file (CSV/Parquet/FITS/HDF5), image folder, or Hub dataset id (mwalmsley/gz2)",
    )
    parser.add_argument("--output", "-o", default=None, help="save the DatasetDict here (save_to_disk)")
    parser.add_argument("--format", default="auto", help="catalogue layout (default: auto-detect)")
    parser.add_argument("--image_size", type=int, default=None, help="resize cutouts (pixels)")
    parser.add_argument("--cache_dir", default=None, help="the datasets cache to use")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad row or image")
    parser.add_argument("--grid", default=None, help="also write a sample-grid PNG here")
    add_dataclass_arguments(parser, DatasetArguments)
    # prepare's first name for the split seed, kept as a hidden alias
    parser.add_argument(
        "--seed", dest="split_seed", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )


def run(args: argparse.Namespace) -> int:
    from hf_galaxy.commands import dataclasses_from
    from hf_galaxy.data.dataset import load_galaxy_dataset
    from hf_galaxy.training import DatasetArguments

    (dataset_args,) = dataclasses_from(args, DatasetArguments)
    options = {k: getattr(args, k) for k in ("format", "image_size", "cache_dir", "strict")}
    dsd = load_galaxy_dataset(args.catalog, dataset_args.image_dir, **options, **dataset_args.loader_kwargs())
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
