"""``hf-galaxy evaluate``: metrics of a trained classifier on a labelled dataset split (optionally with TTA).

hf-galaxy evaluate --model outputs/vit-lora-galaxy-zoo --dataset GalaxyZoo1_DR_table2.csv --image_dir cutouts/
hf-galaxy evaluate --model user/vit-galaxy-zoo --dataset data/saved_dsd --split validation --tta
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "evaluate a trained classifier (directory or Hub repo) on a dataset split: metrics JSON + confusion matrix"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="training output directory, its adapter/ folder, or Hub repo id"
    )
    parser.add_argument(
        "--dataset",
        required=True,
        help="catalogue file, image folder, saved DatasetDict directory or synthetic:N",
    )
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument(
        "--output_dir", default=None, help="where metrics/plots go (default: MODEL/eval or ./eval)"
    )
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--tta", action="store_true", help="average predictions over rotations")
    parser.add_argument("--tta_rotations", default="0,90,180,270", help="TTA angles, multiples of 90")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    parser.add_argument("--image_dir", default=None, help="folder with the cutouts named in the catalogue")
    parser.add_argument("--label_scheme", default="plurality", help="plurality, clean, votes or column")
    parser.add_argument("--question", default=None)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--label_column", default=None)
    parser.add_argument(
        "--classes",
        default=None,
        help="the classes the model was trained with: comma-separated names, a preset (e.g. "
        "elliptical-spiral-other) or a JSON {new: [old, ...]} mapping",
    )
    parser.add_argument("--image_size", type=int, default=None, help="resize cutouts at preparation time")
    parser.add_argument(
        "--split_seed",
        type=int,
        default=0,
        help="seed of the train/validation/test split of a catalogue (default 0: that of hf-galaxy prepare, "
        "load_galaxy_dataset and the training recipes' --split_seed, whatever the training --seed was)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=42,
        help="seed of the synthetic:N generation: the training run's --seed (default 42, as the shipped "
        "recipe configs); the split uses --split_seed",
    )


def _run(args: argparse.Namespace) -> int:
    from hf_galaxy.inference import evaluate_model
    from hf_galaxy.training import DataArguments, load_training_data, parse_rotations

    model_path = Path(args.model)
    output_dir = Path(args.output_dir or (model_path / "eval" if model_path.is_dir() else "eval"))
    data_args = DataArguments(
        image_dir=args.image_dir,
        label_scheme=args.label_scheme,
        question=args.question,
        threshold=args.threshold,
        label_column=args.label_column,
        classes=args.classes,
        image_size=args.image_size,
        split_seed=args.split_seed,
    )
    dsd = load_training_data(args.dataset, data_args, output_dir=output_dir, seed=args.seed)
    if args.split not in dsd:
        raise ValueError(f"split {args.split!r} not in the dataset (splits: {list(dsd)})")
    metrics = evaluate_model(
        args.model,
        dsd[args.split],
        output_dir=output_dir,
        batch_size=args.batch_size,
        tta_rotations=parse_rotations(args.tta_rotations) if args.tta else None,
        precision=args.precision,
        split_name=args.split,
    )
    print(json.dumps(metrics, indent=2))
    print(f"metrics and confusion matrix written to {output_dir}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the command; bad input (missing files, unknown model, invalid options) exits with a one-line error."""
    try:
        return _run(args)
    except (OSError, ValueError) as err:
        print(f"hf-galaxy evaluate: error: {err}", file=sys.stderr)
        return 2
