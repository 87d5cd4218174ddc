"""Object detection (DETR, Conditional/Deformable DETR, YOLOS, RT-DETR): :class:`DetectionTrainer`, COCO
metrics during evaluation, and the recipe flow :func:`run_detection` (data -> boxes (-> mosaics) -> model
-> train -> COCO metrics -> plots -> save -> card).

Evaluation keeps only ``logits`` and ``pred_boxes``; the targets travel as one packed tensor
(:func:`pack_targets`) so that accelerate's gather and the trimming of an uneven last batch work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import TrainingArguments

from hf_galaxy.data.transforms import (
    PAD_MULTIPLE,
    DetectionAugmentConfig,
    DetectionCollator,
    DetectionTransform,
)
from hf_galaxy.inference.detection import post_process, predict_detections
from hf_galaxy.metrics import coco_map, cxcywh_to_xywh, finite_metrics
from hf_galaxy.models import load_detector
from hf_galaxy.models.detection import (
    accepts_pixel_mask,
    enable_backbone_checkpointing,
    set_backbone_trainable,
)
from hf_galaxy.training.arguments import (
    DetectionDataArguments,
    DetectionModelArguments,
    DetectionScriptArguments,
)
from hf_galaxy.training.data import run_data
from hf_galaxy.training.trainer import GalaxyTrainer, run_card, start_run

logger = logging.getLogger(__name__)

PAD_INDEX = -100


def pack_targets(labels: Sequence[dict[str, Any]]) -> torch.Tensor:
    """Pack a batch of DETR label dicts into one ``(batch, 1 + max_objects, 5)`` float tensor.

    Row 0 of each image is a header ``[n_objects, target_h, target_w, orig_h, orig_w]``; rows 1..n are
    ``[class, cx, cy, w, h]`` (normalised boxes); the rest is ``-100``. One tensor with the batch first is what
    the ``Trainer``/accelerate evaluation loop handles correctly: an uneven last batch is trimmed by image and
    ``pad_across_processes`` pads dimension 1 (a list of dicts would have every tensor inside it trimmed).
    """
    n_max = max((len(t["class_labels"]) for t in labels), default=0)
    device = labels[0]["boxes"].device if labels else None
    out = torch.full((len(labels), 1 + n_max, 5), float(PAD_INDEX), device=device)
    for i, t in enumerate(labels):
        n = len(t["class_labels"])
        target = t.get("target_size", t["orig_size"])
        out[i, 0, 0] = n
        out[i, 0, 1:3] = torch.as_tensor(target, dtype=torch.float32, device=device)
        out[i, 0, 3:5] = torch.as_tensor(t["orig_size"], dtype=torch.float32, device=device)
        if n:
            out[i, 1 : 1 + n, 0] = t["class_labels"].float()
            out[i, 1 : 1 + n, 1:] = t["boxes"].float().reshape(-1, 4)
    return out


def unpack_targets(packed: Any) -> list[dict[str, np.ndarray]]:
    """Inverse of :func:`pack_targets` (numpy): per image ``class_labels``, ``boxes``, ``target_size``, ``orig_size``."""
    arr = np.asarray(packed, dtype=np.float64)
    out = []
    for img in arr:
        n = int(round(img[0, 0]))
        rows = img[1 : 1 + n]
        out.append(
            {
                "class_labels": rows[:, 0].astype(np.int64),
                "boxes": rows[:, 1:5],
                "target_size": img[0, 1:3],
                "orig_size": img[0, 3:5],
            }
        )
    return out


class DetectionMetrics:
    """``compute_metrics`` for :class:`DetectionTrainer` (needs ``eval_do_concat_batches=False``)."""

    def __init__(self, image_processor: Any, categories: Sequence[str], threshold: float = 0.0) -> None:
        self.processor = image_processor
        self.categories = list(categories)
        self.threshold = threshold

    def __call__(self, eval_pred: Any) -> dict[str, float]:
        predictions, label_ids = eval_pred.predictions, eval_pred.label_ids
        if not isinstance(label_ids, (list, tuple)) or not isinstance(predictions, (list, tuple)):
            raise ValueError("DetectionMetrics needs TrainingArguments(eval_do_concat_batches=False)")
        targets, detections = [], []
        for batch_pred, packed in zip(predictions, label_ids):
            batch_labels = unpack_targets(packed)
            logits, boxes = batch_pred[0], batch_pred[1]
            sizes = np.stack([np.asarray(t["target_size"], dtype=np.float32) for t in batch_labels])
            detections += post_process(self.processor, logits, boxes, sizes, self.threshold)
            for t in batch_labels:
                orig = np.asarray(t["orig_size"])
                scale = orig if "target_size" not in t else np.asarray(t["target_size"])
                targets.append(
                    {
                        "boxes": cxcywh_to_xywh(t["boxes"], scale),
                        "labels": np.asarray(t["class_labels"]),
                        "size": orig,
                    }
                )
        return finite_metrics(coco_map(targets, detections, self.categories))


class DetectionTrainer(GalaxyTrainer):
    """:class:`GalaxyTrainer` whose evaluation keeps only ``logits`` and ``pred_boxes`` (plus the packed
    targets); ``plot_split`` (the untransformed validation split) is drawn with its predictions."""

    def __init__(
        self, *args: Any, num_plot_images: int = 8, plot_score_threshold: float = 0.3, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.num_plot_images = num_plot_images
        self.plot_score_threshold = plot_score_threshold
        self.plot_split: Any = None

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[Any, Any, Any]:
        inputs = self._prepare_inputs(inputs)
        labels = inputs.get("labels")
        with torch.no_grad(), self.compute_loss_context_manager():
            outputs = model(**inputs)
        loss = outputs.loss.detach().mean() if labels is not None and outputs.loss is not None else None
        if prediction_loss_only:
            return loss, None, None
        preds = (outputs.logits.detach().float(), outputs.pred_boxes.detach().float())
        if labels is not None:
            labels = pack_targets(labels)
        return loss, preds, labels

    def write_plots(self, output_dir: Path) -> None:
        """The curves, and ``predictions.png``: predicted and true boxes on the first validation images."""
        from hf_galaxy.plots import plot_detections

        super().write_plots(output_dir)
        shown, k = self.plot_split, self.num_plot_images
        if shown is None or k <= 0:
            return
        rows = shown.select(range(min(k, len(shown))))
        images = [r["image"] for r in rows]
        dets = predict_detections(self.model, self.processing_class, images, threshold=0.0)
        plot_detections(
            images,
            dets,
            self.card.label_names,
            output_dir / "predictions.png",
            truths=[r["objects"] for r in rows],
            score_threshold=self.plot_score_threshold,
        )
        self.card.extra["predictions_plot"] = "predictions.png"


def build_detection_trainer(
    model: nn.Module,
    image_processor: Any,
    train_dataset: Any,
    eval_dataset: Any,
    categories: Sequence[str],
    training_args: TrainingArguments,
    *,
    augment: DetectionAugmentConfig | None = None,
    backbone_checkpointing: bool = False,
    **kwargs: Any,
) -> DetectionTrainer:
    """A :class:`DetectionTrainer` with the transforms, the pixel-mask collator and COCO metrics wired in.

    Sets ``remove_unused_columns=False`` and ``eval_do_concat_batches=False`` (both required) and, with
    ``backbone_checkpointing``, checkpoints the backbone blocks on top of transformers' own
    ``gradient_checkpointing`` of the transformer layers. ``kwargs`` go to the trainer (``card``,
    ``callbacks``, ``num_plot_images``...).
    """
    training_args.remove_unused_columns = False
    training_args.eval_do_concat_batches = False
    if training_args.gradient_checkpointing and not getattr(model, "supports_gradient_checkpointing", False):
        logger.warning(
            "%s does not support transformers' gradient checkpointing: turned off%s",
            type(model).__name__,
            "; the backbone blocks are still checkpointed" if backbone_checkpointing else "",
        )
        training_args.gradient_checkpointing = False
        if hasattr(training_args, "activation_checkpointing"):  # the transformers 5.x name of the flag
            training_args.activation_checkpointing = False
    if backbone_checkpointing:
        n = enable_backbone_checkpointing(model)
        logger.info("backbone gradient checkpointing: %d blocks", n)
    train = (
        train_dataset.with_transform(
            DetectionTransform(image_processor, categories, train=True, augment=augment)
        )
        if train_dataset is not None
        else None
    )
    evals = (
        eval_dataset.with_transform(DetectionTransform(image_processor, categories))
        if eval_dataset is not None
        else None
    )
    return DetectionTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=evals,
        data_collator=DetectionCollator(
            pixel_mask=accepts_pixel_mask(model), pad_to_multiple_of=PAD_MULTIPLE
        ),
        compute_metrics=DetectionMetrics(image_processor, categories),
        processing_class=image_processor,
        **kwargs,
    )


def run_detection(
    script_args: DetectionScriptArguments,
    training_args: TrainingArguments,
    model_args: DetectionModelArguments,
    data_args: DetectionDataArguments | None = None,
    *,
    dataset_dict: Any = None,
    extra_callbacks: Sequence[Any] = (),
) -> dict[str, float]:
    """The detection recipe: data -> boxes (-> mosaics) -> model -> train -> COCO metrics -> plots -> save.

    Writes to ``output_dir``: the model and image processor (``from_pretrained``-loadable), ``train_results.json``,
    ``eval_results.json`` (validation split), ``test_results.json`` (when the final split is ``test``),
    ``all_results.json``, ``trainer_state.json``, ``predictions.png``, ``training_curves.png``,
    ``hf_galaxy_card.json`` (with the detection facts of :func:`~hf_galaxy.data.dataset.dataset_facts`) and
    ``README.md``. Returns all metrics.
    """
    from hf_galaxy.data.dataset import dataset_facts
    from hf_galaxy.data.detection import categories_of

    data_args = data_args or DetectionDataArguments()
    start = start_run(training_args, script_args.precision)
    dataset_dict, train_raw, val_raw, final_raw, final_name = run_data(
        script_args, training_args, data_args, dataset_dict, task="detection"
    )
    categories = categories_of(dataset_dict)
    model, processor = load_detector(
        model_args.model_name_or_path,
        categories,
        model_config=model_args.model_config,
        image_size=data_args.processor_size,
        revision=model_args.revision,
    )
    backbone = set_backbone_trainable(model, script_args.train_backbone)
    checkpoint_backbone = bool(training_args.gradient_checkpointing and script_args.backbone_checkpointing)
    facts = dataset_facts(dataset_dict, task="detection")
    extra = {"backbone_parameters": backbone, "backbone_checkpointing": checkpoint_backbone}
    card = run_card(
        script_args, model_args, facts, categories, final_name, task="object-detection", extra=extra
    )
    trainer = build_detection_trainer(
        model,
        processor,
        train_raw,
        val_raw,
        categories,
        training_args,
        augment=data_args.augment_config(),
        backbone_checkpointing=checkpoint_backbone,
        card=card,
        num_plot_images=script_args.num_plot_images,
        plot_score_threshold=script_args.plot_score_threshold,
        callbacks=extra_callbacks,
    )
    trainer.plot_split = val_raw if val_raw is not None else final_raw
    metrics = trainer.train_and_record(len(train_raw))
    final_ds = (
        final_raw.with_transform(DetectionTransform(processor, categories)) if final_raw is not None else None
    )
    metrics.update(
        trainer.evaluate_splits(
            trainer.eval_dataset,
            final_ds,
            final_name,
            (len(val_raw) if val_raw is not None else 0, len(final_raw) if final_raw is not None else 0),
        )
    )
    return trainer.finish(start, metrics)
