"""``hf-galaxy ensemble``: combine classifiers (given, or trained here) and compare them with each member.

The same options as ``recipes/ensemble.py`` (and the training recipes, for members trained here); options come
from ``--config FILE.yaml`` and are overridden by the command line::

    hf-galaxy ensemble --members outputs/run1,outputs/run2,outputs/run3 --method stacking \\
        --dataset GalaxyZoo1_DR_table2.csv --image_dir cutouts/ --output_dir outputs/ensemble
    hf-galaxy ensemble --config recipes/configs/ensemble_tiny.yaml --strategy bagging
    hf-galaxy ensemble --ensemble outputs/ensemble --dataset data/saved_dsd --tta true   # re-evaluate a saved one
    hf-galaxy ensemble --ensemble outputs/ensemble --dataset data/saved_dsd --publish_repo_id user/gz1-ensemble \\
        --publish_private true --publish_revision v1
"""

from __future__ import annotations

import argparse

HELP = (
    "ensemble classifiers (soft/hard/weighted voting, stacking; members given or trained by seeds, bagging or "
    "boosting): member/ensemble metrics table, saved ensemble, optional publish"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hf_galaxy.commands import add_recipe_arguments
    from hf_galaxy.ensemble import EnsembleArguments
    from hf_galaxy.training import make_parser

    add_recipe_arguments(
        parser, make_parser(use_lora=False, extra_dataclasses=[EnsembleArguments], add_help=False)
    )


def run(args: argparse.Namespace) -> int:
    from hf_galaxy.cli import configure_logging
    from hf_galaxy.commands import recipe_arguments
    from hf_galaxy.ensemble import EnsembleArguments, run_ensemble, summary
    from hf_galaxy.training import make_parser

    parser = make_parser(use_lora=False, extra_dataclasses=[EnsembleArguments])
    script_args, training_args, model_args, data_args, ensemble_args = recipe_arguments(args, parser)
    if not script_args.dataset:
        raise ValueError("--dataset is required (the splits to fit and evaluate on)")
    configure_logging(training_args)
    print(summary(run_ensemble(script_args, training_args, model_args, data_args, ensemble_args)))
    return 0
