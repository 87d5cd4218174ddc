"""Detections from a trained detector: post-processing to absolute boxes, and batched prediction on images."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from hf_galaxy.data.transforms import PAD_MULTIPLE, DetectionCollator
from hf_galaxy.models.detection import accepts_pixel_mask


def post_process(
    image_processor: Any, logits: Any, pred_boxes: Any, target_sizes: Any, threshold: float = 0.0
) -> list[dict[str, np.ndarray]]:
    """The image processor's ``post_process_object_detection``: absolute xyxy boxes, scores and labels."""
    outputs = SimpleNamespace(
        logits=torch.as_tensor(np.asarray(logits, dtype=np.float32)),
        pred_boxes=torch.as_tensor(np.asarray(pred_boxes, dtype=np.float32)),
    )
    sizes = torch.as_tensor(np.asarray(target_sizes, dtype=np.float32)).reshape(-1, 2)
    results = image_processor.post_process_object_detection(outputs, threshold=threshold, target_sizes=sizes)
    return [{k: v.detach().cpu().numpy() for k, v in r.items()} for r in results]


@torch.no_grad()
def predict_detections(
    model: nn.Module,
    image_processor: Any,
    images: Sequence[Image.Image],
    *,
    threshold: float = 0.5,
    batch_size: int = 8,
) -> list[dict[str, np.ndarray]]:
    """Detect objects on PIL images: per image ``{"boxes": xyxy absolute pixels, "scores", "labels"}``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    collate = DetectionCollator(pixel_mask=accepts_pixel_mask(model), pad_to_multiple_of=PAD_MULTIPLE)
    out: list[dict[str, np.ndarray]] = []
    try:
        for start in range(0, len(images), batch_size):
            chunk = [im.convert("RGB") for im in images[start : start + batch_size]]
            examples = []
            for im in chunk:
                enc = image_processor(images=[im], do_pad=False, return_tensors="pt")
                w, h = im.size
                examples.append(
                    {
                        "pixel_values": enc["pixel_values"][0],
                        "labels": {"orig_size": torch.tensor([h, w]), "boxes": torch.zeros(0, 4)},
                    }
                )
            batch = collate(examples)
            inputs = {"pixel_values": batch["pixel_values"].to(device, dtype=next(model.parameters()).dtype)}
            if "pixel_mask" in batch:
                inputs["pixel_mask"] = batch["pixel_mask"].to(device)
            outputs = model(**inputs)
            sizes = torch.stack([lab["target_size"] for lab in batch["labels"]])
            out += post_process(
                image_processor,
                outputs.logits.float().cpu(),
                outputs.pred_boxes.float().cpu(),
                sizes,
                threshold,
            )
    finally:
        model.train(was_training)
    return out
