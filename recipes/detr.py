"""Fine-tune DETR, or any other ``AutoModelForObjectDetection`` (Conditional / Deformable DETR, YOLOS, RT-DETR),
on Galaxy Zoo detection sets: boxes from catalogue radii or source extraction, categories from the votes,
optional multi-object mosaic fields (see :mod:`hf_galaxy.data.detection`).

Defaults come from a YAML file (``--config``); any option on the command line overrides it::

    # DETR-R50 from the Hub, fp16, gradient checkpointing of the transformer *and* the backbone
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml recipes/detr.py \\
        --config recipes/configs/detr.yaml --dataset gz_decals_catalog.csv --image_dir cutouts/

    # YOLOS (the HF-ecosystem YOLO)
    accelerate launch recipes/detr.py --config recipes/configs/yolos.yaml --dataset synthetic:2000

    # offline, on CPU: tiny random-weight models, synthetic galaxies at 64 px
    accelerate launch --cpu --num_processes 1 recipes/detr.py --config recipes/configs/detr_tiny.yaml
    accelerate launch --cpu --num_processes 1 recipes/detr.py --config recipes/configs/yolos_tiny.yaml

The output directory holds the model and image processor (``from_pretrained`` / ``pipeline("object-detection")``),
``test_results.json`` (COCO mAP, mAP50, mAP75, mAR@100, per-class AP on the test split; metrics COCO leaves
undefined, e.g. ``map_large`` without large boxes, are left out), ``eval_results.json`` (the same on the
validation split), ``all_results.json``, ``predictions.png`` (predicted and true boxes on validation images),
``training_curves.png``, ``hf_galaxy_card.json`` and the model card ``README.md``.
"""

from __future__ import annotations

from transformers import TrainingArguments

from hf_galaxy.cli import run_recipe
from hf_galaxy.training import (
    DetectionDataArguments,
    DetectionModelArguments,
    DetectionScriptArguments,
    GalaxyArgumentParser,
    run_detection,
)
from hf_galaxy.training import make_parser as _make_parser


def make_parser() -> GalaxyArgumentParser:
    """Parser over DetectionScriptArguments, TrainingArguments, DetectionModelArguments, DetectionDataArguments."""
    return _make_parser(task="detection")


def main(
    script_args: DetectionScriptArguments,
    training_args: TrainingArguments,
    model_args: DetectionModelArguments,
    data_args: DetectionDataArguments | None = None,
) -> dict[str, float]:
    """Train, evaluate (COCO metrics), draw predictions and save; returns all metrics."""
    return run_detection(script_args, training_args, model_args, data_args)


if __name__ == "__main__":
    raise SystemExit(run_recipe(main, make_parser()))
