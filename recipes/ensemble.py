"""Ensembles of fine-tuned galaxy classifiers: train or gather members, combine, evaluate, save, publish.

Members are given (``--members dir1,dir2,user/model@v1``) or trained here through the training recipe with
``--strategy seeds|bagging|boosting`` and ``--n_members K`` (members go to ``OUTPUT_DIR/members/``). The
combination (``--method soft|hard|weighted|stacking``) is fitted on the validation split; every member, the
members' mean and the ensemble are evaluated on the test split in one pass over the data, and the table
(accuracy, macro-F1, ECE, vote RMSE, NLL) is printed. ``OUTPUT_DIR`` then holds ``ensemble_config.json``,
``ensemble_results.json`` and the card (``README.md``); ``GalaxyEnsemble.from_pretrained(OUTPUT_DIR)``
reloads it::

    # three tiny members with different seeds, offline on CPU
    python recipes/ensemble.py --config recipes/configs/ensemble_tiny.yaml

    # ViT-B/16 LoRA members on a GPU, stacked, with test-time rotation averaging
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml recipes/ensemble.py \\
        --config recipes/configs/ensemble.yaml --dataset GalaxyZoo1_DR_table2.csv --image_dir cutouts/

    # combine checkpoints trained earlier (or pulled from the Hub) and publish the ensemble
    python recipes/ensemble.py --members outputs/run1,outputs/run2,user/vit-gz1 --method weighted \\
        --dataset GalaxyZoo1_DR_table2.csv --image_dir cutouts/ --output_dir outputs/ensemble \\
        --publish_repo_id user/gz1-ensemble

Publishing (``--publish_repo_id``, ``--publish_private``, ``--publish_revision``, ``--publish_dry_run DIR``) goes
through the same push as ``hf-galaxy publish``; the uploaded JSON files carry no local paths. ``weighted`` and
``stacking`` are fitted on the validation split, so they need a test split to be scored on (the recipe refuses
to score them on the rows they were fitted on).

Members train one after another in this process (not under ``accelerate launch`` with several processes).
"""

from __future__ import annotations

from typing import Any

from transformers import TrainingArguments

from hf_galaxy.cli import run_recipe
from hf_galaxy.ensemble import EnsembleArguments, run_ensemble, summary
from hf_galaxy.training import DataArguments, GalaxyArgumentParser, ModelArguments, ScriptArguments
from hf_galaxy.training import make_parser as _make_parser


def make_parser() -> GalaxyArgumentParser:
    """Parser over the training dataclasses plus :class:`EnsembleArguments` (LoRA off by default)."""
    return _make_parser(use_lora=False, extra_dataclasses=[EnsembleArguments])


def main(
    script_args: ScriptArguments,
    training_args: TrainingArguments,
    model_args: ModelArguments,
    data_args: DataArguments | None = None,
    ensemble_args: EnsembleArguments | None = None,
) -> dict[str, Any]:
    """Build, evaluate, save (and publish) the ensemble; returns the results (table rows, split, folder)."""
    results = run_ensemble(
        script_args,
        training_args,
        model_args,
        data_args or DataArguments(),
        ensemble_args or EnsembleArguments(),
    )
    print(summary(results))
    return results


if __name__ == "__main__":
    raise SystemExit(run_recipe(main, make_parser()))
