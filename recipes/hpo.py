"""Hyperparameter search for the LoRA recipe with Optuna (``Trainer.hyperparameter_search``).

Searches learning rate (log-uniform), LoRA rank (categorical), weight decay and the number of epochs;
``model_init`` rebuilds the LoRA model with each trial's rank. The best trial (objective and
hyperparameters) is written to ``OUTPUT_DIR/best_trial.json`` and every trial to ``OUTPUT_DIR/trials.json``::

    # offline, on CPU: a small ViT built from a config, on synthetic galaxies
    python recipes/hpo.py --config recipes/configs/hpo_tiny.yaml --n_trials 4
    # ViT-B/16 with LoRA on real data
    accelerate launch recipes/hpo.py --config recipes/configs/hpo.yaml --dataset CATALOG --image_dir CUTOUTS

Then train the final model with the best values, e.g.
``python recipes/vit_lora.py --config recipes/configs/vit_lora.yaml --learning_rate LR --lora_r R ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from hf_galaxy.cli import run_recipe
from hf_galaxy.training import DataArguments, GalaxyArgumentParser, ModelArguments, ScriptArguments, run_hpo
from hf_galaxy.training import make_parser as _make_parser


@dataclass
class HPOArguments:
    """The search space and budget."""

    n_trials: int = field(default=10, metadata={"help": "Number of Optuna trials."})
    hpo_metric: str = field(default="eval_accuracy", metadata={"help": "Metric to optimise (eval_* key)."})
    hpo_direction: str = field(default="maximize", metadata={"help": "maximize or minimize."})
    learning_rate_min: float = field(default=1e-4, metadata={"help": "Learning-rate range (log-uniform)."})
    learning_rate_max: float = field(default=3e-3, metadata={"help": "Learning-rate range (log-uniform)."})
    lora_ranks: str = field(default="4,8,16,32", metadata={"help": "LoRA ranks to try (comma-separated)."})
    weight_decay_min: float = field(default=0.0, metadata={"help": "Weight-decay range (uniform)."})
    weight_decay_max: float = field(default=0.1, metadata={"help": "Weight-decay range (uniform)."})
    epochs_min: int = field(default=2, metadata={"help": "Epoch range (integers)."})
    epochs_max: int = field(default=6, metadata={"help": "Epoch range (integers)."})


def make_parser() -> GalaxyArgumentParser:
    """Parser over the recipe dataclasses plus :class:`HPOArguments` (LoRA on)."""
    return _make_parser(use_lora=True, extra_dataclasses=[HPOArguments])


def main(
    script_args: ScriptArguments,
    training_args: TrainingArguments,
    model_args: ModelArguments,
    data_args: DataArguments | None = None,
    hpo_args: HPOArguments | None = None,
) -> dict:
    """Run the search; returns the best trial as saved in best_trial.json."""
    hpo = hpo_args or HPOArguments()
    return run_hpo(
        script_args,
        training_args,
        model_args,
        data_args,
        n_trials=hpo.n_trials,
        metric=hpo.hpo_metric,
        direction=hpo.hpo_direction,
        learning_rate=(hpo.learning_rate_min, hpo.learning_rate_max),
        lora_ranks=[int(r) for r in hpo.lora_ranks.split(",") if r.strip()],
        weight_decay=(hpo.weight_decay_min, hpo.weight_decay_max),
        epochs=(hpo.epochs_min, hpo.epochs_max),
    )


if __name__ == "__main__":
    raise SystemExit(run_recipe(main, make_parser()))
