"""Hyperparameter search on top of the classification recipe: Optuna through ``Trainer.hyperparameter_search``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn
from transformers import TrainingArguments

from hf_galaxy.jsonio import write_json
from hf_galaxy.training.arguments import DataArguments, ModelArguments, ScriptArguments
from hf_galaxy.training.classification import build_trainer, prepare_run
from hf_galaxy.training.precision import apply_precision

logger = logging.getLogger(__name__)


def run_hpo(
    script_args: ScriptArguments,
    training_args: TrainingArguments,
    model_args: ModelArguments,
    data_args: DataArguments | None = None,
    *,
    n_trials: int = 10,
    metric: str = "eval_accuracy",
    direction: str = "maximize",
    learning_rate: tuple[float, float] = (1e-4, 3e-3),
    lora_ranks: Sequence[int] = (4, 8, 16, 32),
    weight_decay: tuple[float, float] = (0.0, 0.1),
    epochs: tuple[int, int] = (2, 6),
    dataset_dict: Any = None,
) -> dict[str, Any]:
    """Optuna search over learning rate, LoRA rank, weight decay and epochs via ``Trainer.hyperparameter_search``.

    ``model_init`` rebuilds the (LoRA) model with each trial's rank. Writes ``best_trial.json`` (trial number,
    objective, hyperparameters) and ``trials.json`` (every trial) to ``output_dir`` and returns the best trial.
    """
    import optuna

    data_args = data_args or DataArguments()
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    if not metric.startswith("eval_"):
        metric = f"eval_{metric}"
    apply_precision(training_args, script_args.precision)
    run = prepare_run(script_args, training_args, model_args, data_args, dataset_dict=dataset_dict)
    if run.val_raw is None:
        raise ValueError("hyperparameter search needs a 'validation' split to score trials")
    ranks = [int(r) for r in lora_ranks]
    trials: dict[int, dict[str, Any]] = {}
    current: dict[str, Any] = {}

    def hp_space(trial: optuna.Trial) -> dict[str, Any]:
        params: dict[str, Any] = {
            "learning_rate": trial.suggest_float("learning_rate", *learning_rate, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *weight_decay),
            "num_train_epochs": trial.suggest_int("num_train_epochs", *epochs),
        }
        if model_args.use_lora:
            params["lora_r"] = trial.suggest_categorical("lora_r", ranks)
        current.clear()
        current.update(number=trial.number, params=dict(params))
        return params

    def model_init(trial: Any = None) -> nn.Module:
        rank = None
        if trial is not None and model_args.use_lora:
            # Trainer may call model_init before hp_space; optuna returns the same value for a repeated name
            rank = (
                int(trial.suggest_categorical("lora_r", ranks))
                if hasattr(trial, "suggest_categorical")
                else int(trial["lora_r"])
            )
        return run.build_model(lora_r=rank)

    def compute_objective(metrics: dict[str, float]) -> float:
        if metric not in metrics:
            raise KeyError(f"hpo metric {metric!r} not among the evaluation metrics {sorted(metrics)}")
        value = float(metrics[metric])
        if current:
            trials[current["number"]] = {"trial": current["number"], **current["params"], metric: value}
        return value

    trainer = build_trainer(
        None,
        training_args,
        train_dataset=run.train_raw.with_transform(run.train_transform),
        eval_dataset=run.val_raw.with_transform(run.eval_transform),
        image_processor=run.processor,
        class_names=run.class_names,
        soft_labels=run.soft,
        soft_loss=script_args.soft_loss,
        model_init=model_init,
        tree=run.tree,
        tree_loss=run.tree_loss,
    )
    best = trainer.hyperparameter_search(
        hp_space=hp_space,
        compute_objective=compute_objective,
        n_trials=n_trials,
        direction=direction,
        backend="optuna",
        hp_name=lambda trial: f"trial-{trial.number}",
        sampler=optuna.samplers.TPESampler(seed=training_args.seed),
    )
    result = {
        "trial": int(best.run_id),
        "objective": float(best.objective),
        "metric": metric,
        "direction": direction,
        "n_trials": n_trials,
        "hyperparameters": dict(best.hyperparameters),
    }
    if trainer.is_world_process_zero():
        out = Path(training_args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "best_trial.json", result)
        write_json(out / "trials.json", [trials[k] for k in sorted(trials)])
        logger.info(
            "best trial %s: %s=%.4f with %s", best.run_id, metric, best.objective, best.hyperparameters
        )
    return result
