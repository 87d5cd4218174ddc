"""Image classification: the collator, the hard/soft-label loss, :class:`ClassificationTrainer` and the
recipe flow :func:`run_training` (data -> model (-> LoRA) -> train -> evaluate -> plots -> save -> card).

:func:`finetune` is the same flow in one call, for a ``DatasetDict`` or anything ``--dataset`` takes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import TrainerCallback, TrainingArguments

from hf_galaxy.data.transforms import GalaxyTransform, TreeTransform, parse_rotations
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
        labels, votes = inputs.get("labels"), inputs.get("votes")
        outputs, logits = self.forward_images(model, inputs)
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

    @staticmethod
    def forward_images(model: nn.Module, inputs: dict[str, Any]) -> tuple[Any, torch.Tensor]:
        """``(outputs, logits)`` of the model on the batch's ``pixel_values`` alone (the targets stay out)."""
        outputs = model(pixel_values=inputs["pixel_values"])
        return outputs, outputs["logits"] if isinstance(outputs, dict) else outputs[0]

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


class ChanceLossWarning(TrainerCallback):
    """Warns once when the mean training loss of ``patience`` epochs in a row stays within ``tolerance``
    (relative) of the chance value ``ln(n_classes)``: the model is not learning the images (a from-scratch ViT
    on a few thousand real galaxies, a learning rate that is too high...)."""

    def __init__(self, n_classes: int, patience: int = 3, tolerance: float = 0.02) -> None:
        self.chance = math.log(max(n_classes, 2))
        self.patience, self.tolerance = patience, tolerance
        self.losses: list[float] = []
        self.streak = 0
        self.warned = False

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.losses:
            return
        mean = sum(self.losses) / len(self.losses)
        self.losses = []
        self.streak = self.streak + 1 if abs(mean - self.chance) <= self.tolerance * self.chance else 0
        if self.streak >= self.patience and not self.warned:
            self.warned = True
            logger.warning(
                "the training loss has stayed at its chance value ln(%d) = %.3f for %d epochs: the model is "
                "not learning. From scratch on real galaxies, try a CNN preset (--model_config resnet-mini); "
                "else a lower --learning_rate",
                round(math.exp(self.chance)),
                self.chance,
                self.streak,
            )


def build_trainer(
    model: nn.Module | None,
    training_args: TrainingArguments,
    *,
    train_dataset: Any = None,
    eval_dataset: Any = None,
    image_processor: Any = None,
    class_names: Sequence[str],
    model_init: Callable[..., nn.Module] | None = None,
    tree: Any = None,
    tree_loss: str = "dirichlet",
    **kwargs: Any,
) -> ClassificationTrainer:
    """A :class:`ClassificationTrainer` with the galaxy collator and metrics (``remove_unused_columns=False``);
    ``kwargs`` go to the trainer (``soft_labels``, ``card``, ``callbacks``, ``tta_rotations``...). With a
    ``tree`` (:class:`~hf_galaxy.data.tree.TreeLayout`) it is a :class:`~hf_galaxy.training.tree.TreeTrainer`
    trained with ``tree_loss`` on the answer counts."""
    training_args.remove_unused_columns = False
    if training_args.use_cpu or not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # pinning needs an accelerator
    if tree is not None:
        from hf_galaxy.training.tree import (
            TREE_LABEL_NAMES,
            TreeTrainer,
            collate_tree,
            make_tree_compute_metrics,
        )

        training_args.label_names = list(TREE_LABEL_NAMES)
        kwargs.pop("soft_labels", None)
        kwargs.pop("soft_loss", None)
        return TreeTrainer(
            model=model,
            args=training_args,
            data_collator=collate_tree,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=image_processor,
            compute_metrics=make_tree_compute_metrics(tree, tree_loss),
            model_init=model_init,
            class_names=class_names,
            tree=tree,
            tree_loss=tree_loss,
            **kwargs,
        )
    training_args.label_names = list(LABEL_NAMES)
    if not kwargs.get("soft_labels"):  # the chance loss of soft targets is their entropy, not ln(C)
        kwargs["callbacks"] = [ChanceLossWarning(len(class_names)), *kwargs.get("callbacks", ())]
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


def prepared_image_size(split: Any) -> int | None:
    """The side of a split's images when they are square (``load_galaxy_dataset(image_size=...)`` prepares them
    all at one size), else None: without ``--image_size``, a model with no input size of its own (a CNN built
    from a config) gets an image processor at that size rather than upsampling to 224."""
    try:
        width, height = split[0]["image"].size
    except (IndexError, KeyError, AttributeError, TypeError):
        return None
    return int(width) if width == height else None


def _load_classifier(model_args: ModelArguments, class_names: Sequence[str], image_size: int | None) -> Any:
    """The ``(model, processor)`` that ``model_args`` name for ``class_names`` (see :func:`load_classifier`)."""
    return load_classifier(
        model_args.model_name_or_path,
        class_names,
        model_config=model_args.model_config,
        revision=model_args.revision,
        image_size=image_size,
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
    image_size: int | None = None
    tree: Any = None  # a TreeLayout: a whole-tree model, one output per answer (class_names)
    tree_loss: str = "dirichlet"
    _first_model: nn.Module | None = None

    def build_model(self, lora_r: int | None = None) -> nn.Module:
        """The classifier (LoRA-wrapped when ``use_lora``); the first call reuses the model loaded up front.
        A whole-tree model has the tree and its loss in its config."""
        margs = self.model_args
        if self._first_model is not None:
            model, self._first_model = self._first_model, None
        else:
            model = _load_classifier(margs, self.class_names, self.image_size)[0]
        if self.tree is not None:
            from hf_galaxy.data.tree import set_tree_config

            set_tree_config(model.config, self.tree, self.tree_loss)
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
    tree = dataset_tree(dataset_dict)
    if data_args.label_scheme == "tree" and tree is None:
        raise ValueError(
            "--label_scheme tree: the dataset has no 'counts' column and decision tree; load it with "
            "label_scheme='tree' (a saved DatasetDict keeps both)"
        )
    if tree is not None:
        class_names = tree.answer_names  # one output per answer
        soft = False
        if script_args.soft_labels:
            raise ValueError(
                "--soft_labels does not apply to a whole-tree dataset: choose its loss with --tree_loss "
                "dirichlet|soft_ce"
            )
    else:
        class_names = class_names_of(dataset_dict)
        soft = bool(script_args.soft_labels or data_args.label_scheme == "votes")
    if soft and "votes" not in dataset_dict["train"].column_names:
        raise ValueError("soft-label training needs a 'votes' column in the dataset")
    if val_raw is None and training_args.eval_strategy != "no":
        raise ValueError(f"eval_strategy={training_args.eval_strategy} needs a 'validation' split")
    image_size = data_args.image_size or prepared_image_size(train_raw)
    model, processor = _load_classifier(model_args, class_names, image_size)
    transform = TreeTransform if tree is not None else GalaxyTransform
    train_transform = transform(
        processor, class_names, train=data_args.augment, augment=data_args.augment_config()
    )
    eval_transform = transform(processor, class_names, train=False)
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
        train_transform=train_transform,
        eval_transform=eval_transform,
        model_args=model_args,
        gradient_checkpointing=bool(
            getattr(training_args, "activation_checkpointing", False) or training_args.gradient_checkpointing
        ),
        image_size=image_size,
        tree=tree,
        tree_loss=script_args.tree_loss,
        _first_model=model,
    )


def dataset_tree(dsd: Any) -> Any:
    """The decision tree (:class:`~hf_galaxy.data.tree.TreeLayout`) of a whole-tree dataset (a ``counts``
    column, and the tree in its facts), else None; an error when it has one without the other."""
    from hf_galaxy.data.dataset import describe
    from hf_galaxy.data.tree import TreeLayout

    if "counts" not in (dsd["train"].column_names or []):
        return None
    data = describe(dsd).get("tree")
    if not isinstance(data, dict):
        raise ValueError(
            "the dataset has a 'counts' column but no decision tree in its facts; load it with "
            "load_galaxy_dataset(..., label_scheme='tree')"
        )
    layout = TreeLayout.from_dict(data)
    width = len(dsd["train"].select_columns(["counts"])[0]["counts"])  # no image decoded
    if width != layout.n_answers:
        raise ValueError(
            f"the dataset's counts have {width} entries; its tree {layout.name!r} has {layout.n_answers}"
        )
    return layout


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
    return _train(script_args, training_args, model_args, data_args, dataset_dict, extra_callbacks)[1]


def _train(
    script_args: ScriptArguments,
    training_args: TrainingArguments,
    model_args: ModelArguments,
    data_args: DataArguments | None,
    dataset_dict: Any,
    extra_callbacks: Sequence[Any],
) -> tuple[ClassificationTrainer, dict[str, float]]:
    """:func:`run_training`'s flow; returns the trainer with the metrics."""
    from hf_galaxy.data.dataset import dataset_facts

    data_args = data_args or DataArguments()
    start = start_run(training_args, script_args.precision)
    run = prepare_run(script_args, training_args, model_args, data_args, dataset_dict=dataset_dict)
    model = run.build_model()
    facts = dataset_facts(run.dataset_dict)
    card = run_card(
        script_args, model_args, facts, run.class_names, run.final_name, model=model,
        lora=getattr(model, "lora_summary", None), soft_labels=run.soft,
    )  # fmt: skip
    if run.tree is not None:
        from hf_galaxy.data.tree import TREE_CONFIG_KEY

        card.extra["tree"] = dict(getattr(model.config, TREE_CONFIG_KEY))
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
        tree=run.tree,
        tree_loss=run.tree_loss,
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
    return trainer, trainer.finish(start, metrics)


@dataclass
class FinetuneResult:
    """What :func:`finetune` returns: the trainer (its model is the trained one), all metrics, the output folder."""

    trainer: ClassificationTrainer
    metrics: dict[str, float]
    output_dir: Path


def _is_model_config(model: Any) -> bool:
    """Whether ``finetune(model=...)`` names an architecture to build (a preset, inline JSON, key=value...)
    rather than a checkpoint (a Hub id or a directory)."""
    from hf_galaxy.models.presets import CONFIG_PRESETS

    if isinstance(model, dict):
        return True
    text = str(model).strip()
    if Path(text).expanduser().exists():
        return False
    return text.split(",")[0] in CONFIG_PRESETS or text.startswith("{") or "=" in text


def finetune(
    data: Any,
    model: str | dict[str, Any] | None = None,
    output_dir: str | os.PathLike = "outputs/finetune",
    *,
    lora: bool = True,
    **options: Any,
) -> FinetuneResult:
    """Fine-tune an image classifier on Galaxy Zoo data in one call; the same flow as ``recipes/vit_lora.py``.

    Args:
        data: a ``DatasetDict`` (e.g. from :func:`~hf_galaxy.load_galaxy_dataset`) or anything ``--dataset``
            takes: a catalogue file, an image folder, a saved DatasetDict folder, ``synthetic:N``.
        model: a Hub id or checkpoint directory (default ``google/vit-base-patch16-224-in21k``), or an
            architecture to build with random weights: a preset (``vit-mini``), inline JSON or a dict.
        output_dir: where the model, metrics, plots and card go.
        lora: train a LoRA adapter (saved with the merged model) instead of all weights.
        **options: any option of the recipes by name: ``TrainingArguments`` fields (``num_train_epochs``,
            ``learning_rate``, ``report_to``...), model options (``lora_r``...), data options (``image_dir``,
            ``label_scheme``, ``image_size``...) and run options (``soft_labels``, ``tta``, ``precision``...).

    Returns:
        A :class:`FinetuneResult` (``trainer``, ``metrics``, ``output_dir``).

    Example::

        from hf_galaxy import finetune

        result = finetune("GalaxyZoo1_DR_table2.csv", output_dir="outputs/gz1", image_dir="cutouts/",
                          num_train_epochs=3)
        result.metrics["test_accuracy"]
    """
    groups: dict[type, dict[str, Any]] = {cls: {} for cls in (ScriptArguments, ModelArguments, DataArguments)}
    training: dict[str, Any] = {}
    fields = {cls: {f.name for f in dataclasses.fields(cls) if f.init} for cls in groups}
    training_fields = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    for key, value in options.items():
        owner = next((cls for cls, names in fields.items() if key in names), None)
        if owner is not None:
            groups[owner][key] = value
        elif key in training_fields:
            training[key] = value
        else:
            import difflib

            known = sorted(training_fields.union(*fields.values()))
            close = difflib.get_close_matches(key, known, n=3)
            raise TypeError(
                f"finetune() got an unknown option {key!r}"
                + (f"; did you mean {', '.join(close)}?" if close else "")
            )
    if model is not None:
        key = "model_config" if _is_model_config(model) else "model_name_or_path"
        groups[ModelArguments][key] = json.dumps(model) if isinstance(model, dict) else str(model)
    if not isinstance(data, (str, os.PathLike)):
        dataset_dict = data
    else:
        dataset_dict = None
        groups[ScriptArguments]["dataset"] = str(data)
    training_args = TrainingArguments(
        **{"report_to": "none", "remove_unused_columns": False, **training, "output_dir": str(output_dir)}
    )
    trainer, metrics = _train(
        ScriptArguments(**groups[ScriptArguments]),
        training_args,
        ModelArguments(**{"use_lora": lora, **groups[ModelArguments]}),
        DataArguments(**groups[DataArguments]),
        dataset_dict,
        (),
    )
    return FinetuneResult(trainer=trainer, metrics=metrics, output_dir=Path(output_dir))
