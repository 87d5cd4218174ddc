"""Image classification: the collator, the hard/soft-label loss, :class:`ClassificationTrainer` and the
recipe flow :func:`run_training` (data -> model (-> LoRA) -> train -> evaluate -> plots -> save -> card).

:func:`train_classifier` runs the same flow on an in-memory ``DatasetDict`` (used by the demo).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import TrainingArguments

from hf_galaxy.data.transforms import GalaxyTransform, parse_rotations
from hf_galaxy.metrics import confusion, make_compute_metrics, softmax, split_label_ids
from hf_galaxy.models import apply_lora, load_classifier, save_lora_model
from hf_galaxy.training.arguments import DataArguments, ModelArguments, ScriptArguments
from hf_galaxy.training.data import class_names_of, run_data
from hf_galaxy.training.trainer import GalaxyTrainer, run_card, start_run

logger = logging.getLogger(__name__)

LABEL_NAMES = ["labels", "votes"]


def collate_galaxy(examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack ``pixel_values`` and, when every example has them, ``labels`` (long) and ``votes`` (float)."""
    batch = {"pixel_values": torch.stack([e["pixel_values"] for e in examples])}
    if all(e.get("labels") is not None for e in examples):
        batch["labels"] = torch.tensor([int(e["labels"]) for e in examples], dtype=torch.long)
    if all(e.get("votes") is not None for e in examples):
        batch["votes"] = torch.stack([torch.as_tensor(e["votes"], dtype=torch.float32) for e in examples])
    return batch


def soft_label_loss(
    logits: torch.Tensor, votes: torch.Tensor, labels: torch.Tensor | None = None, kind: str = "ce"
) -> torch.Tensor:
    """Cross-entropy (``kind="ce"``) or KL divergence (``"kl"``) between softmax(logits) and vote fractions.

    Vote rows are renormalised to sum to 1; rows without votes (all zero) fall back to the hard label.
    """
    logp = F.log_softmax(logits.float(), dim=-1)
    target = votes.float().clamp_min(0)
    total = target.sum(dim=-1, keepdim=True)
    if labels is not None:
        one_hot = F.one_hot(labels.clamp_min(0), logits.shape[-1]).float()
        target = torch.where(total > 0, target / total.clamp_min(1e-12), one_hot)
    else:
        target = target / total.clamp_min(1e-12)
    if kind == "ce":
        return -(target * logp).sum(dim=-1).mean()
    if kind == "kl":
        return F.kl_div(logp, target, reduction="batchmean")
    raise ValueError(f"soft-label loss must be 'ce' or 'kl', got {kind!r}")


class ClassificationTrainer(GalaxyTrainer):
    """:class:`GalaxyTrainer` whose loss is hard-label cross-entropy or soft-label CE/KL against vote fractions.

    The batch carries ``labels`` and ``votes`` (``label_names=["labels", "votes"]``), so both reach
    ``compute_metrics``; only ``pixel_values`` go to the model. The final split is predicted (and, with
    ``tta_rotations``, predicted again with test-time augmentation) so that its confusion matrix and sample
    grid can be drawn; ``plot_split`` is the untransformed split they show.
    """

    # our compute_loss returns a per-batch mean: let Trainer divide it by the accumulation steps
    loss_is_scaled_for_ga = False
    predicts_final_split = True  # the confusion matrix and sample grid need the final split's predictions

    def __init__(
        self,
        *args: Any,
        class_names: Sequence[str] = (),
        soft_labels: bool = False,
        soft_loss: str = "ce",
        tta_rotations: Sequence[int] | None = None,
        num_grid_images: int = 16,
        save_merged: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.class_names = list(class_names)
        self.soft_labels = soft_labels
        self.soft_loss = soft_loss
        self.tta_rotations = list(tta_rotations) if tta_rotations else None
        self.num_grid_images = num_grid_images
        self.save_merged = save_merged
        self.model_accepts_loss_kwargs = False
        self.plot_split: Any = None
        self.final_prediction: Any = None

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        votes = inputs.pop("votes", None)
        outputs = model(pixel_values=inputs["pixel_values"])
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        if self.soft_labels and votes is not None:
            loss = soft_label_loss(logits, votes, labels, self.soft_loss)
        elif labels is not None:
            loss = F.cross_entropy(
                logits.float(),
                labels,
                ignore_index=-100,
                label_smoothing=float(self.args.label_smoothing_factor),
            )
        else:
            raise ValueError(
                "the batch has no 'labels' (nor 'votes' with soft labels): cannot compute a loss"
            )
        return (loss, outputs) if return_outputs else loss

    def predict_with_tta(self, dataset: Any, rotations: Sequence[int], metric_key_prefix: str) -> Any:
        """``predict`` with the model wrapped in :class:`~hf_galaxy.inference.TTAClassifier` (restored after)."""
        from hf_galaxy.inference import TTAClassifier

        model, wrapped = self.model, self.model_wrapped
        self.model = self.model_wrapped = TTAClassifier(model, rotations)
        try:
            return self.predict(dataset, metric_key_prefix=metric_key_prefix)
        finally:
            self.model, self.model_wrapped = model, wrapped

    def final_metrics(self, dataset: Any, prefix: str) -> dict[str, float]:
        self.final_prediction = self.predict(dataset, metric_key_prefix=prefix)
        out = dict(self.final_prediction.metrics)
        if self.tta_rotations:
            out.update(self.predict_with_tta(dataset, self.tta_rotations, f"{prefix}_tta").metrics)
        return out

    def write_plots(self, output_dir: Path) -> None:
        """Confusion matrix and sample grid of the final split (true and predicted labels), and the curves."""
        from hf_galaxy.plots import plot_confusion_matrix, plot_sample_grid

        super().write_plots(output_dir)
        prediction, split = self.final_prediction, self.plot_split
        if prediction is None or split is None:
            return
        logits = (
            prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        )
        probs = softmax(logits)
        preds = probs.argmax(axis=1)
        labels, _ = split_label_ids(prediction.label_ids)
        name = self.card.eval_split or "test"
        if labels is not None and labels.size:
            plot_confusion_matrix(
                confusion(labels, preds, len(self.class_names)),
                self.class_names,
                output_dir / "confusion_matrix.png",
                title=f"Confusion matrix ({name}, n={int((labels >= 0).sum())})",
            )
        k = min(self.num_grid_images, len(split), len(preds))
        if k > 0:
            rows = split.select(range(k))
            plot_sample_grid(
                [r["image"] for r in rows],
                [r["label"] for r in rows],
                preds[:k],
                self.class_names,
                output_dir / "sample_grid.png",
                probs=probs[:k],
            )

    def save_final_model(self, output_dir: Path) -> str:
        """A LoRA run saves ``adapter/`` and (with ``save_merged``) the merged plain model; else ``save_model``."""
        if getattr(self.model, "peft_config", None) is None:
            return super().save_final_model(output_dir)
        save_lora_model(
            self.model,
            output_dir,
            self.processing_class,
            merge=self.save_merged,
            is_main_process=self.is_world_process_zero(),
        )
        return "merged LoRA" if self.save_merged else "LoRA"


def build_trainer(
    model: nn.Module | None,
    training_args: TrainingArguments,
    *,
    train_dataset: Any = None,
    eval_dataset: Any = None,
    image_processor: Any = None,
    class_names: Sequence[str],
    model_init: Callable[..., nn.Module] | None = None,
    **kwargs: Any,
) -> ClassificationTrainer:
    """A :class:`ClassificationTrainer` with the galaxy collator and metrics (``remove_unused_columns=False``);
    ``kwargs`` go to the trainer (``soft_labels``, ``card``, ``callbacks``, ``tta_rotations``...)."""
    training_args.remove_unused_columns = False
    training_args.label_names = list(LABEL_NAMES)
    if training_args.use_cpu or not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # pinning needs an accelerator
    return ClassificationTrainer(
        model=model,
        args=training_args,
        data_collator=collate_galaxy,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=image_processor,
        compute_metrics=make_compute_metrics(class_names),
        model_init=model_init,
        class_names=class_names,
        **kwargs,
    )


@dataclass
class PreparedRun:
    """Data splits, transforms and a model factory shared by :func:`run_training` and :func:`run_hpo`."""

    dataset_dict: Any
    class_names: list[str]
    soft: bool
    processor: Any
    train_raw: Any
    val_raw: Any
    final_raw: Any
    final_name: str | None
    base_name: str | None
    train_transform: GalaxyTransform
    eval_transform: GalaxyTransform
    model_args: ModelArguments
    gradient_checkpointing: bool = False
    _first_model: nn.Module | None = None

    def build_model(self, lora_r: int | None = None) -> nn.Module:
        """The classifier (LoRA-wrapped when ``use_lora``); the first call reuses the model loaded up front."""
        margs = self.model_args
        if self._first_model is not None:
            model, self._first_model = self._first_model, None
        else:
            model = load_classifier(
                margs.model_name_or_path,
                self.class_names,
                model_config=margs.model_config,
                revision=margs.revision,
            )[0]
        if margs.use_lora:
            extra = [s.strip() for s in (margs.lora_modules_to_save or "").split(",") if s.strip()]
            model = apply_lora(
                model,
                r=lora_r or margs.lora_r,
                alpha=margs.lora_alpha,
                dropout=margs.lora_dropout,
                target_modules=margs.lora_target_modules,
                modules_to_save=extra,
                base_model_name_or_path=self.base_name,
            )
            if self.gradient_checkpointing:
                model.enable_input_require_grads()
        return model


def prepare_run(
    script_args: ScriptArguments,
    training_args: TrainingArguments,
    model_args: ModelArguments,
    data_args: DataArguments,
    *,
    dataset_dict: Any = None,
) -> PreparedRun:
    """Load the data (main process first), check the splits, load the model and image processor."""
    dataset_dict, train_raw, val_raw, final_raw, final_name = run_data(
        script_args, training_args, data_args, dataset_dict
    )
    class_names = class_names_of(dataset_dict)
    soft = bool(script_args.soft_labels or data_args.label_scheme == "votes")
    if soft and "votes" not in dataset_dict["train"].column_names:
        raise ValueError("soft-label training needs a 'votes' column in the dataset")
    if val_raw is None and training_args.eval_strategy != "no":
        raise ValueError(f"eval_strategy={training_args.eval_strategy} needs a 'validation' split")
    model, processor = load_classifier(
        model_args.model_name_or_path,
        class_names,
        model_config=model_args.model_config,
        revision=model_args.revision,
    )
    return PreparedRun(
        dataset_dict=dataset_dict,
        class_names=class_names,
        soft=soft,
        processor=processor,
        train_raw=train_raw,
        val_raw=val_raw,
        final_raw=final_raw,
        final_name=final_name,
        base_name=model_args.base_model,
        train_transform=GalaxyTransform(
            processor, class_names, train=data_args.augment, augment=data_args.augment_config()
        ),
        eval_transform=GalaxyTransform(processor, class_names, train=False),
        model_args=model_args,
        gradient_checkpointing=bool(
            getattr(training_args, "activation_checkpointing", False) or training_args.gradient_checkpointing
        ),
        _first_model=model,
    )


def run_training(
    script_args: ScriptArguments,
    training_args: TrainingArguments,
    model_args: ModelArguments,
    data_args: DataArguments | None = None,
    *,
    dataset_dict: Any = None,
    extra_callbacks: Sequence[Any] = (),
) -> dict[str, float]:
    """The recipe: data -> model (-> LoRA) -> train -> evaluate -> plots -> save -> card. Returns all metrics.

    Writes to ``training_args.output_dir`` the files listed in the project's output-directory contract
    (model, preprocessor, metrics JSON, plots, ``hf_galaxy_card.json``, and ``adapter/`` for LoRA).
    Only the main process writes.
    """
    from hf_galaxy.data.dataset import dataset_facts

    data_args = data_args or DataArguments()
    start = start_run(training_args, script_args.precision)
    run = prepare_run(script_args, training_args, model_args, data_args, dataset_dict=dataset_dict)
    model = run.build_model()
    facts = dataset_facts(run.dataset_dict)
    card = run_card(
        script_args, model_args, facts, run.class_names, run.final_name,
        lora=getattr(model, "lora_summary", None), soft_labels=run.soft,
    )  # fmt: skip
    trainer = build_trainer(
        model,
        training_args,
        train_dataset=run.train_raw.with_transform(run.train_transform),
        eval_dataset=run.val_raw.with_transform(run.eval_transform) if run.val_raw is not None else None,
        image_processor=run.processor,
        class_names=run.class_names,
        soft_labels=run.soft,
        soft_loss=script_args.soft_loss,
        tta_rotations=parse_rotations(script_args.tta_rotations) if script_args.tta else None,
        num_grid_images=script_args.num_grid_images,
        save_merged=script_args.save_merged,
        card=card,
        callbacks=extra_callbacks,
    )
    trainer.plot_split = run.final_raw
    metrics = trainer.train_and_record(len(run.train_raw))
    metrics.update(
        trainer.evaluate_splits(
            trainer.eval_dataset,
            run.final_raw.with_transform(run.eval_transform) if run.final_raw is not None else None,
            run.final_name,
            (
                len(run.val_raw) if run.val_raw is not None else 0,
                len(run.final_raw) if run.final_raw is not None else 0,
            ),
        )
    )
    return trainer.finish(start, metrics)


def train_classifier(
    dataset_dict: Any,
    output_dir: str | os.PathLike,
    *,
    model_name_or_path: str | None = None,
    model_config: str | dict[str, Any] | None = None,
    lora: bool = True,
    training_args: TrainingArguments | dict[str, Any] | None = None,
    model_args: ModelArguments | dict[str, Any] | None = None,
    data_args: DataArguments | dict[str, Any] | None = None,
    script_args: ScriptArguments | dict[str, Any] | None = None,
) -> dict[str, float]:
    """Train a classifier on an in-memory ``DatasetDict`` and write the standard output directory.

    ``training_args`` may be a TrainingArguments or a dict of its fields (``output_dir`` is set to
    ``output_dir``); ``model_args``/``data_args``/``script_args`` likewise. Returns all metrics.
    """

    def _as(cls: type, value: Any, **over: Any) -> Any:
        if value is None:
            value = {}
        if isinstance(value, dict):
            return cls(**{**value, **over})
        return dataclasses.replace(value, **over) if over else value

    margs = _as(ModelArguments, model_args, use_lora=lora)
    if model_name_or_path is not None:
        margs.model_name_or_path = model_name_or_path
    if model_config is not None:
        margs.model_config = model_config if isinstance(model_config, str) else json.dumps(model_config)
    if isinstance(training_args, TrainingArguments):
        targs = training_args
        targs.output_dir = str(output_dir)
    else:
        targs = TrainingArguments(
            **{
                "report_to": "none",
                "remove_unused_columns": False,
                **(training_args or {}),
                "output_dir": str(output_dir),
            }
        )
    return run_training(
        _as(ScriptArguments, script_args),
        targs,
        margs,
        _as(DataArguments, data_args),
        dataset_dict=dataset_dict,
    )
