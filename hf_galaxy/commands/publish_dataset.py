"""``hf-galaxy publish-dataset``: push a prepared dataset to a Hub dataset repo with a generated dataset card.

hf-galaxy prepare gz2_hart16.csv --image_dir cutouts/ --image_size 224 -o prepared/
hf-galaxy publish-dataset prepared/ user/gz2-224 --dry_run dry/
hf-galaxy publish-dataset gz_decals_volunteers_5.csv user/gzd5 --image_dir cutouts/ --label_scheme tree
"""

from __future__ import annotations

import argparse

HELP = "publish a prepared dataset (parquet with the images inside, generated card) to the Hugging Face Hub"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hf_galaxy.commands import add_dataclass_arguments, add_push_arguments
    from hf_galaxy.training import DatasetArguments

    parser.add_argument(
        "dataset", help="a DatasetDict folder saved by hf-galaxy prepare, or anything prepare reads"
    )
    parser.add_argument("repo_id", help="target dataset repo, 'namespace/name'")
    add_push_arguments(parser, "dataset")
    parser.add_argument(
        "--license", default="cc-by-4.0", help="Hub license id for the card (default cc-by-4.0)"
    )
    parser.add_argument("--image_size", type=int, default=None, help="resize cutouts (pixels) when preparing")
    add_dataclass_arguments(parser, DatasetArguments)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hf_galaxy.commands import dataclasses_from
    from hf_galaxy.hub import publish_dataset
    from hf_galaxy.training import DatasetArguments

    source = Path(args.dataset)
    if source.is_dir() and (source / "dataset_dict.json").is_file():
        data = source
    else:
        from hf_galaxy.data.dataset import load_galaxy_dataset

        (dataset_args,) = dataclasses_from(args, DatasetArguments)
        data = load_galaxy_dataset(
            args.dataset, dataset_args.image_dir, image_size=args.image_size, **dataset_args.loader_kwargs()
        )
        print(data.report.summary())
    result = publish_dataset(
        data, args.repo_id, private=args.private, revision=args.revision, commit_message=args.commit_message,
        dry_run_dir=args.dry_run, license=args.license, endpoint=args.endpoint,
    )  # fmt: skip
    if result.dry_run_dir is not None:
        print(f"dry run: wrote the {len(result.files)} files of the dataset to {result.dry_run_dir}")
    else:
        print(
            f"published the dataset to {result.repo_url} (revision {result.revision}, commit {result.commit_oid})"
        )
    for name in result.files:
        print(f"  {name}")
    return 0
