"""The base ``Trainer`` of every hf-galaxy run, and the steps around it that every recipe takes.

:class:`GalaxyTrainer` owns what every run needs: the model-card callback, the resume handling
(``--resume_from_checkpoint last``), the final evaluation (validation and test splits, metrics JSON, the
card's results), the training curves, saving and the card/publish step at the end. The task trainers
(:class:`~hf_galaxy.training.classification.ClassificationTrainer`,
:class:`~hf_galaxy.training.detection.DetectionTrainer`) add only their loss, their predictions and their
pictures. :func:`start_run` is the first step of every recipe: precision, push take-over and seed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainingArguments

from hf_galaxy.hub.card import PRETRAINING_KEY, CardCallback, GalaxyCardData
from hf_galaxy.training.precision import apply_precision

logger = logging.getLogger(__name__)


@dataclass
class RunStart:
    """What :func:`start_run` decided: the training precision and whether to publish at the end."""

    precision: str
    push_to_hub: bool


def start_run(training_args: TrainingArguments, precision: str = "auto") -> RunStart:
    """Resolve the precision, take over ``push_to_hub`` (published once at the end, with the generated
    card) and seed everything; the first step of every recipe."""
    from transformers.trainer_utils import set_seed

    from hf_galaxy.hub import take_over_push

    push = take_over_push(training_args)
    chosen = apply_precision(training_args, precision)
    set_seed(training_args.seed)
    return RunStart(precision=chosen, push_to_hub=push)


def run_card(
    script_args: Any,
    model_args: Any,
    facts: dict[str, Any],
    label_names: Any,
    final_name: str | None,
    model: Any = None,
    **fields: Any,
) -> GalaxyCardData:
    """The card data a run starts with: base model (or config), dataset facts (with ``--dataset`` as their
    ``source``), label names, the split of the final metrics and the encoder's self-supervised pretraining
    when ``model``'s config records one; ``fields`` are the task's own."""
    card = GalaxyCardData(
        base_model=model_args.base_model,
        model_config=model_args.model_config,
        dataset=facts,
        label_names=list(label_names),
        eval_split=final_name or "validation",
        **fields,
    )
    if script_args.dataset:
        card.dataset.setdefault("source", script_args.dataset)
    pretraining = getattr(getattr(model, "config", None), PRETRAINING_KEY, None)
    if isinstance(pretraining, dict):
        card.extra["pretraining"] = dict(pretraining)
    return card


def resolve_checkpoint(resume: Any, output_dir: str | Path) -> str | bool | None:
    """``--resume_from_checkpoint``: ``last``/``latest``/``true`` -> the newest ``checkpoint-*`` of
    ``output_dir``; a directory must exist. The errors name the argument."""
    from transformers.trainer_utils import get_last_checkpoint

    if resume in ("last", "latest", "True", "true", True):
        found = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
        if found is None:
            raise FileNotFoundError(f"--resume_from_checkpoint {resume}: no checkpoint-* in {output_dir}")
        return found
    if resume is not None and resume is not False and not Path(str(resume)).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {resume}: no such checkpoint directory")
    return resume or None


def card_metrics(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """The quality metrics of one evaluation for the model card: keys ``<prefix>_<name>`` become ``<name>``;
    ``epoch``, runtimes, speeds, sample counts and undefined (NaN) values are left out."""
    return {
        k[len(prefix) + 1 :]: v
        for k, v in metrics.items()
        if k.startswith(prefix + "_")
        and not k.endswith(("_runtime", "_per_second", "_samples"))
        and isinstance(v, (int, float))
        and math.isfinite(v)
    }


class GalaxyTrainer(Trainer):
    """``Trainer`` with what every hf-galaxy run needs; the task trainers subclass it.

    ``card`` (a :class:`~hf_galaxy.hub.card.GalaxyCardData`) is filled by a :class:`CardCallback` during
    training, gets the final metrics from :meth:`evaluate_splits` and is written (with the README card, and
    published when asked) by :meth:`finish`. Without a ``card`` (hyperparameter-search trials) no card data
    is recorded or written during training.
    """

    #: the final split gets its own pass even when it is the validation split (see :meth:`evaluate_splits`)
    predicts_final_split = False

    def __init__(self, *args: Any, card: GalaxyCardData | None = None, **kwargs: Any) -> None:
        self.card = card if card is not None else GalaxyCardData()
        callbacks = list(kwargs.pop("callbacks", None) or [])
        kwargs["callbacks"] = ([CardCallback(card)] if card is not None else []) + callbacks
        super().__init__(*args, **kwargs)

    # ---- train
    def train(self, resume_from_checkpoint: Any = None, **kwargs: Any) -> Any:
        """``Trainer.train`` with ``resume_from_checkpoint`` resolved by :func:`resolve_checkpoint`."""
        resume = resolve_checkpoint(resume_from_checkpoint, self.args.output_dir)
        return super().train(resume_from_checkpoint=resume, **kwargs)

    def _load_full_weights(self, folder: str | Path) -> bool:
        """Load a full (not LoRA) model's weights from a checkpoint folder as ``from_pretrained`` does; False
        when ``Trainer``'s own loading applies (LoRA adapters, DeepSpeed, FSDP, no ``model.safetensors``).

        transformers 5.x saves checkpoints under the checkpoint key names (``vit.encoder.layer.*``) while the
        model's own names differ (``vit.layers.*``); ``Trainer``'s plain ``load_state_dict`` then leaves every
        renamed weight at its fresh value, with a mere warning, on resume and for ``load_best_model_at_end``.
        ``from_pretrained`` converts the names.
        """
        model = self.model
        if (
            getattr(model, "peft_config", None) is not None
            or self.is_deepspeed_enabled
            or self.is_fsdp_enabled
        ):
            return False
        if (
            not (Path(folder) / "model.safetensors").is_file()
            and not (Path(folder) / "model.safetensors.index.json").is_file()
        ):
            return False
        loaded = type(model).from_pretrained(str(folder), config=model.config)
        missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
        if missing or unexpected:
            logger.warning("checkpoint %s: missing keys %s, unexpected keys %s", folder, missing, unexpected)
        return True

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        if (model is None or model is self.model) and self._load_full_weights(resume_from_checkpoint):
            return
        super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self) -> None:
        if not self._load_full_weights(self.state.best_model_checkpoint):
            super()._load_best_model()

    def train_and_record(self, n_train: int) -> dict[str, float]:
        """Train (resuming as ``args.resume_from_checkpoint`` says); log and save the train metrics and state."""
        result = self.train(resume_from_checkpoint=self.args.resume_from_checkpoint)
        metrics: dict[str, float] = {**result.metrics, "train_samples": n_train}
        self.log_metrics("train", result.metrics)
        self.save_metrics("train", metrics)
        self.save_state()
        self.card.extra.setdefault(
            "train_runtime_s", round(float(result.metrics.get("train_runtime", 0.0)), 1)
        )
        return metrics

    # ---- evaluate
    def final_metrics(self, dataset: Any, prefix: str) -> dict[str, float]:
        """The metrics of the final split (the task trainers may add predictions, TTA...)."""
        return self.evaluate(dataset, metric_key_prefix=prefix)

    def evaluate_splits(
        self, validation: Any, final: Any, final_name: str | None, sizes: tuple[int, int]
    ) -> dict[str, float]:
        """Evaluate the validation split (``eval_*``) and the final split (``test_*`` when it is the test
        split, else ``eval_*``); log and save them, and put the final metrics on the card. ``sizes`` are the
        two splits' row counts.

        When the final split is the validation split it is evaluated once, unless the trainer
        :attr:`predicts_final_split` (its predictions are drawn, or scored again with TTA); the second
        pass's metrics are saved only when they add keys (TTA) to the first's.
        """
        metrics: dict[str, float] = {}
        val: dict[str, float] = {}
        run_val = validation is not None and (final_name != "validation" or self.predicts_final_split)
        if run_val:
            val = self.evaluate(validation, metric_key_prefix="eval")
            val["eval_samples"] = sizes[0]
            self.log_metrics("eval", val)
            self.save_metrics("eval", val)
            metrics.update(val)
        if final is not None:
            prefix = "test" if final_name == "test" else "eval"
            out = self.final_metrics(final, prefix)
            out[f"{prefix}_samples"] = sizes[1]
            if prefix == "test" or not run_val or set(out) - set(val):
                self.log_metrics(prefix, out)
                self.save_metrics(prefix, out)
            metrics.update(out)
            self.card.eval_results = card_metrics(out, prefix)
            self.card.eval_split = final_name
        return metrics

    # ---- save
    def write_plots(self, output_dir: Path) -> None:
        """The run's pictures (main process): training curves; the task trainers add theirs."""
        from hf_galaxy.plots import plot_training_curves

        plot_training_curves(self.state.log_history, output_dir / "training_curves.png")

    def save_final_model(self, output_dir: Path) -> str:
        """Save the trained model and processor to ``output_dir`` (every process); returns what kind of model
        was saved (``full``, ``LoRA``, ``merged LoRA``)."""
        self.save_model(str(output_dir))
        return "full"

    def finish(self, run: RunStart, metrics: dict[str, float]) -> dict[str, float]:
        """Plots, model, card data and README card; publish when ``--push_to_hub`` was asked. Returns the
        finite numeric ``metrics``."""
        from hf_galaxy.hub import finish_output_dir

        output_dir = Path(self.args.output_dir)
        if self.is_world_process_zero():
            self.write_plots(output_dir)
        saved = self.save_final_model(output_dir)
        if self.is_world_process_zero():
            self.card.precision = run.precision
            self.card.save(output_dir)
            finish_output_dir(output_dir, self.args, run.push_to_hub)
            logger.info(
                "hf-galaxy: wrote the %s model, metrics, plots and card data to %s (process %d of %d)",
                saved,
                output_dir,
                self.args.process_index,
                self.args.world_size,
            )
        self.accelerator.wait_for_everyone()
        return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not math.isnan(float(v))}
