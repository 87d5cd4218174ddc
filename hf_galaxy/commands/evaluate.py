"""``hf-galaxy evaluate``: metrics of a trained classifier on a labelled dataset split (optionally with TTA); a
whole-tree model is scored per question against a ``--label_scheme tree`` dataset.

hf-galaxy evaluate --model outputs/vit-lora-galaxy-zoo --dataset GalaxyZoo1_DR_table2.csv --image_dir cutouts/
hf-galaxy evaluate --model user/vit-galaxy-zoo --dataset data/saved_dsd --split validation --tta
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

HELP = "evaluate a trained classifier (directory or Hub repo) on a dataset split: metrics JSON + confusion matrix"


@dataclass
class EvaluateArguments:
    """What ``hf-galaxy evaluate`` scores, and how."""

    model: str = field(metadata={"help": "Training output directory, its adapter/ folder, or Hub repo id."})
    dataset: str = field(
        metadata={"help": "Catalogue file, image folder, saved DatasetDict directory or synthetic:N."}
    )
    split: str = field(default="test", metadata={"help": "Split to evaluate."})
    output_dir: str | None = field(
        default=None, metadata={"help": "Where metrics and plots go (default: MODEL/eval or ./eval)."}
    )
    batch_size: int = field(default=32, metadata={"help": "Images per batch."})
    tta: bool = field(default=False, metadata={"help": "Average predictions over rotations."})
    tta_rotations: str = field(default="0,90,180,270", metadata={"help": "TTA angles, multiples of 90."})
    precision: str = field(
        default="auto",
        metadata={"help": "auto, bf16, fp16 or fp32.", "choices": ["auto", "bf16", "fp16", "fp32"]},
    )
    image_size: int | None = field(
        default=None, metadata={"help": "Resize the cutouts once at preparation time (pixels, square)."}
    )
    seed: int = field(
        default=42,
        metadata={
            "help": "Seed of the synthetic:N generation: the training run's --seed (default 42, as the shipped "
            "recipe configs); the split uses --split_seed."
        },
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hf_galaxy.commands import add_dataclass_arguments
    from hf_galaxy.training import DatasetArguments

    add_dataclass_arguments(parser, EvaluateArguments, DatasetArguments)


def run(args: argparse.Namespace) -> int:
    from hf_galaxy.commands import dataclasses_from
    from hf_galaxy.inference import evaluate_model
    from hf_galaxy.training import DataArguments, DatasetArguments, load_training_data, parse_rotations

    ev, dataset_args = dataclasses_from(args, EvaluateArguments, DatasetArguments)
    model_path = Path(ev.model)
    output_dir = Path(ev.output_dir or (model_path / "eval" if model_path.is_dir() else "eval"))
    data_args = DataArguments(**vars(dataset_args), image_size=ev.image_size)
    dsd = load_training_data(ev.dataset, data_args, output_dir=output_dir, seed=ev.seed)
    if ev.split not in dsd:
        raise ValueError(f"split {ev.split!r} not in the dataset (splits: {list(dsd)})")
    metrics = evaluate_model(
        ev.model,
        dsd[ev.split],
        output_dir=output_dir,
        batch_size=ev.batch_size,
        tta_rotations=parse_rotations(ev.tta_rotations) if ev.tta else None,
        precision=ev.precision,
        split_name=ev.split,
    )
    print(json.dumps(metrics, indent=2))
    print(f"metrics and plots written to {output_dir}")
    return 0
