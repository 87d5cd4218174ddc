"""``hf-galaxy train``: fine-tune an image classifier; the same code and options as ``recipes/vit_lora.py``.

LoRA is on by default (``--use_lora false`` trains all weights, like ``recipes/vit_full.py``). Options come
from ``--config FILE.yaml`` and are overridden by the command line::

    hf-galaxy train --config recipes/configs/vit_lora.yaml --dataset GalaxyZoo1_DR_table2.csv --image_dir cutouts/
    hf-galaxy train --dataset synthetic:300 --model_config vit-tiny --max_steps 20 --output_dir outputs/tiny
"""

from __future__ import annotations

import argparse
import json

HELP = (
    "fine-tune a classifier (LoRA by default, --use_lora false for all weights); same options as the recipes"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hf_galaxy.commands import add_recipe_arguments
    from hf_galaxy.training import make_parser

    add_recipe_arguments(parser, make_parser(use_lora=True, add_help=False))


def run(args: argparse.Namespace) -> int:
    from hf_galaxy.cli import configure_logging
    from hf_galaxy.commands import recipe_arguments
    from hf_galaxy.training import make_parser, run_training

    script_args, training_args, model_args, data_args = recipe_arguments(args, make_parser(use_lora=True))
    configure_logging(training_args)
    metrics = run_training(script_args, training_args, model_args, data_args)
    keys = [k for k in metrics if k.endswith(("_accuracy", "_macro_f1", "_ece", "_vote_rmse", "_loss"))]
    print(json.dumps({k: round(metrics[k], 4) for k in keys}, indent=2))
    print(f"model, metrics and plots written to {training_args.output_dir}")
    return 0
