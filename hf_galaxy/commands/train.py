"""``hf-galaxy train``: fine-tune an image classifier; the same code and options as ``recipes/vit_lora.py``.

LoRA is on by default (``--use_lora false`` trains all weights, like ``recipes/vit_full.py``). Options come
from ``--config FILE.yaml`` and are overridden by the command line::

    hf-galaxy train --config recipes/configs/vit_lora.yaml --dataset GalaxyZoo1_DR_table2.csv --image_dir cutouts/
    hf-galaxy train --dataset synthetic:300 --model_config vit-tiny --max_steps 20 --output_dir outputs/tiny
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = (
    "fine-tune a classifier (LoRA by default, --use_lora false for all weights); same options as the recipes"
)

_UNSET = object()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hf_galaxy.training import make_parser

    recipe = make_parser(use_lora=True, add_help=False)
    parser._add_container_actions(recipe)
    # every option defaults to a sentinel, so run() can tell command-line values from YAML/defaults
    for action in parser._actions:
        if action.dest not in ("help", argparse.SUPPRESS):
            action.default = _UNSET


def _run(args: argparse.Namespace) -> int:
    from hf_galaxy.training import make_parser, run_training

    explicit = {
        k: v for k, v in vars(args).items() if v is not _UNSET and not k.startswith("_") and k != "command"
    }
    config = explicit.pop("config", None)
    script_args, training_args, model_args, data_args = make_parser(use_lora=True).build(explicit, config)
    metrics = run_training(script_args, training_args, model_args, data_args)
    keys = [k for k in metrics if k.endswith(("_accuracy", "_macro_f1", "_ece", "_vote_rmse", "_loss"))]
    print(json.dumps({k: round(metrics[k], 4) for k in keys}, indent=2))
    print(f"model, metrics and plots written to {training_args.output_dir}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the command; bad input (missing files, unknown model, invalid options) exits with a one-line error."""
    try:
        return _run(args)
    except (OSError, ValueError) as err:
        print(f"hf-galaxy train: error: {err}", file=sys.stderr)
        return 2
