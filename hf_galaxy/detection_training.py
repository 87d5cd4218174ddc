"""Training object detectors (DETR, Conditional/Deformable DETR, YOLOS, RT-DETR) on Galaxy Zoo detection sets.

* :func:`load_detector`: any ``AutoModelForObjectDetection`` from a checkpoint or from a config (presets
  ``detr-tiny``, ``yolos-tiny``, ``detr-small``, ``detr-r50``...), with the type's image processor (PIL backend without
  torchvision) and ``id2label`` from the dataset categories.
* :class:`DetectionAugment`: box-aware augmentation: rotation by multiples of 90 degrees, mirror flips only
  together with the chirality-aware category swap (off when the swap is impossible), scale jitter.
* :class:`DetectionTransform` (``Dataset.with_transform``) and :class:`DetectionCollator` (pads to the batch
  maximum and builds ``pixel_mask``).
* :class:`DetectionMetrics`: COCO mAP, mAP50, mAP75, mAR@1/10/100 and per-class AP with pycocotools
  ``COCOeval``, on boxes post-processed back to absolute pixels of the original images.
* :func:`enable_backbone_checkpointing`: activation checkpointing of the conv backbone's residual blocks.
  transformers' ``gradient_checkpointing_enable()`` only covers DETR's encoder/decoder layers, whose
  activations are small next to the backbone's, so on its own it costs time and saves little memory.
* :func:`set_backbone_trainable`: in transformers 5.x, ``DetrConvEncoder`` freezes every backbone parameter
  whose name lacks ``stage.1``/``stage.2``/``stage.3``; the HF ResNet names its stages ``stages.N``, so with
  ``use_timm_backbone=False`` the *whole* backbone ends up frozen. ``mode="detr"`` restores the DETR
  convention (stem and first stage frozen, later stages trained).
* :class:`DetectionTrainer` (evaluation returns only logits and boxes) and :func:`build_detection_trainer`.
* :func:`predict_detections` and :func:`plot_detections`: predictions on validation images, drawn to PNG.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import Trainer, TrainingArguments

from hf_galaxy.detection import _rot90_box
from hf_galaxy.transforms import chirality_permutation

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------- models
_TINY_RESNET = {
    "model_type": "resnet",
    "embedding_size": 16,
    "hidden_sizes": [16, 32, 64, 128],
    "depths": [1, 1, 1, 1],
    "layer_type": "basic",
    "out_features": ["stage4"],
}
DETECTOR_PRESETS: dict[str, dict[str, Any]] = {
    # tests / CPU demo: ~0.2M parameters
    "detr-tiny": {
        "model_type": "detr",
        "backbone_config": _TINY_RESNET,
        "use_pretrained_backbone": False,
        "use_timm_backbone": False,
        "d_model": 64,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 128,
        "decoder_ffn_dim": 128,
        "num_queries": 20,
        "dropout": 0.0,
    },
    "conditional-detr-tiny": {
        "model_type": "conditional_detr",
        "backbone_config": _TINY_RESNET,
        "use_pretrained_backbone": False,
        "use_timm_backbone": False,
        "d_model": 64,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 128,
        "decoder_ffn_dim": 128,
        "num_queries": 20,
    },
    "yolos-tiny": {
        "model_type": "yolos",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "image_size": [64, 64],
        "patch_size": 8,
        "num_detection_tokens": 20,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    },
    "deformable-detr-tiny": {
        "model_type": "deformable_detr",
        "backbone_config": {**_TINY_RESNET, "out_features": ["stage2", "stage3", "stage4"]},
        "use_pretrained_backbone": False,
        "use_timm_backbone": False,
        "d_model": 32,
        "encoder_layers": 1,
        "decoder_layers": 2,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "num_queries": 20,
        "num_feature_levels": 3,
        "encoder_n_points": 2,
        "decoder_n_points": 2,
    },
    "rt-detr-tiny": {
        "model_type": "rt_detr",
        "backbone_config": {
            **_TINY_RESNET,
            "model_type": "rt_detr_resnet",
            "out_features": ["stage2", "stage3", "stage4"],
        },
        "use_pretrained_backbone": False,
        "use_timm_backbone": False,
        "d_model": 32,
        "encoder_hidden_dim": 32,
        "encoder_in_channels": [32, 64, 128],
        "decoder_in_channels": [32, 32, 32],
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "num_queries": 20,
        "num_denoising": 0,
    },
    # a mid-sized DETR for CPU benchmarks (benchmarks/bench_detr.py's default)
    "detr-small": {
        "model_type": "detr",
        "backbone_config": {
            "model_type": "resnet",
            "embedding_size": 32,
            "hidden_sizes": [64, 128, 256, 512],
            "depths": [2, 2, 2, 2],
            "layer_type": "basic",
            "out_features": ["stage4"],
        },
        "use_pretrained_backbone": False,
        "use_timm_backbone": False,
        "d_model": 128,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 256,
        "decoder_ffn_dim": 256,
        "num_queries": 50,
    },
    # the DETR-R50 architecture with random weights (benchmarks; no download)
    "detr-r50": {
        "model_type": "detr",
        "backbone_config": {
            "model_type": "resnet",
            "embedding_size": 64,
            "hidden_sizes": [256, 512, 1024, 2048],
            "depths": [3, 4, 6, 3],
            "layer_type": "bottleneck",
            "out_features": ["stage4"],
        },
        "use_pretrained_backbone": False,
        "use_timm_backbone": False,
    },
}


def _parse_detector_config(spec: str | dict[str, Any]) -> dict[str, Any]:
    """``preset[,key=value...]``, inline JSON, a JSON file or ``key=value,...`` (with ``model_type``)."""
    from hf_galaxy.models import parse_model_config

    if isinstance(spec, dict):
        cfg = copy.deepcopy(spec)
    else:
        head, _, rest = spec.strip().partition(",")
        if head.strip() in DETECTOR_PRESETS:
            cfg = copy.deepcopy(DETECTOR_PRESETS[head.strip()])
            if rest.strip():
                over = parse_model_config(rest)
                if "model_type=" not in rest:
                    over.pop("model_type", None)
                cfg.update(over)
        else:
            cfg = parse_model_config(spec)
            if "model_type=" not in spec and '"model_type"' not in spec and not Path(spec).is_file():
                cfg.pop("model_type", None)
    if "model_type" not in cfg or cfg["model_type"] == "vit":
        raise ValueError(
            f"--model_config {spec!r}: give an object-detection model_type (detr, conditional_detr, "
            f"deformable_detr, yolos, rt_detr) or a preset ({', '.join(DETECTOR_PRESETS)})"
        )
    return cfg


def load_detector(
    model_name_or_path: str | None,
    categories: Sequence[str],
    *,
    model_config: str | dict[str, Any] | None = None,
    image_size: int | None = None,
    revision: str | None = None,
) -> tuple[nn.Module, Any]:
    """An ``AutoModelForObjectDetection`` for ``categories`` and its image processor.

    With ``model_config`` the model is built with random weights (no download; backbones never load
    pretrained weights) and the image processor resizes to ``image_size`` squares (default 800, YOLOS: the
    config's image size). Otherwise the checkpoint is loaded with a new head when its labels differ.
    """
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForObjectDetection

    from hf_galaxy.models import default_image_processor, resolve_model_path

    id2label = {i: str(c) for i, c in enumerate(categories)}
    label2id = {c: i for i, c in id2label.items()}
    if model_config is not None:
        cfg = _parse_detector_config(model_config)
        model_type = cfg.pop("model_type")
        backbone = cfg.get("backbone_config")
        if isinstance(backbone, dict):
            backbone = dict(backbone)
            cfg["backbone_config"] = AutoConfig.for_model(backbone.pop("model_type", "resnet"), **backbone)
        if model_type == "yolos" and image_size is not None:
            cfg["image_size"] = [int(image_size), int(image_size)]
        try:
            config = AutoConfig.for_model(model_type, **cfg)
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"--model_config: cannot build a {model_type!r} config from {cfg}: {err}"
            ) from err
        config.num_labels = len(categories)
        config.id2label, config.label2id = id2label, label2id
        model = AutoModelForObjectDetection.from_config(config)
        size = image_size or (config.image_size[0] if model_type == "yolos" else 800)
        processor = default_image_processor(model_type, int(size))
        return model, processor
    path = resolve_model_path(model_name_or_path or "facebook/detr-resnet-50", revision=revision)
    model = AutoModelForObjectDetection.from_pretrained(
        path, revision=revision, id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True
    )
    kwargs = {"size": {"height": int(image_size), "width": int(image_size)}} if image_size is not None else {}
    processor = AutoImageProcessor.from_pretrained(path, revision=revision, **kwargs)
    return model, processor


MASKLESS_MODEL_TYPES: frozenset[str] = frozenset({"yolos", "rt_detr", "rt_detr_v2", "d_fine"})
"""Detectors that see the whole padded canvas: YOLOS has no ``pixel_mask`` argument; RT-DETR (v1, v2) and
D-FINE accept one but never use it (their backbone wrapper only downsamples it, the encoder never reads it)."""
MASKED_MODEL_TYPES: frozenset[str] = frozenset(
    {"detr", "conditional_detr", "deformable_detr", "dab_detr", "table_transformer"}
)
"""Detectors whose output does depend on ``pixel_mask`` (their position embeddings and attention use it)."""


@torch.no_grad()
def pixel_mask_changes_output(model: nn.Module, size: int = 64) -> bool:
    """Probe: does masking out the right half of a ``size`` px image change the model's predictions?

    Runs the model twice in eval mode on one random image, with a full mask and with the right half masked;
    restores the training mode. False for models that accept ``pixel_mask`` but ignore it (e.g. RT-DETR).
    """
    model = getattr(model, "module", model)
    if "pixel_mask" not in inspect.signature(model.forward).parameters:
        return False
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 3, size, size, generator=g).to(param.device, dtype=param.dtype)
        full = torch.ones(1, size, size, dtype=torch.long, device=param.device)
        half = full.clone()
        half[:, :, size // 2 :] = 0
        a, b = model(pixel_values=x, pixel_mask=full), model(pixel_values=x, pixel_mask=half)
        return not (
            torch.allclose(a.logits.float(), b.logits.float(), atol=1e-6)
            and torch.allclose(a.pred_boxes.float(), b.pred_boxes.float(), atol=1e-6)
        )
    finally:
        model.train(was_training)


def accepts_pixel_mask(model: nn.Module) -> bool:
    """Whether the model *uses* ``pixel_mask``, i.e. predicts boxes relative to the unpadded image.

    False for models without the argument (YOLOS) and for those that take it but ignore it
    (:data:`MASKLESS_MODEL_TYPES`: RT-DETR, RT-DETR v2, D-FINE): they see the padded canvas, so their targets
    and predictions must be canvas-relative (:class:`DetectionCollator` ``pixel_mask=False``). True for the
    DETR family (:data:`MASKED_MODEL_TYPES`); other model types are probed once with
    :func:`pixel_mask_changes_output` and the answer is cached on the model.
    """
    model = getattr(model, "module", model)
    if "pixel_mask" not in inspect.signature(model.forward).parameters:
        return False
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in MASKLESS_MODEL_TYPES:
        return False
    if model_type in MASKED_MODEL_TYPES:
        return True
    cached = getattr(model, "_hf_galaxy_uses_pixel_mask", None)
    if cached is None:
        try:
            cached = pixel_mask_changes_output(model)
        except Exception as err:  # a model the probe cannot run (other inputs needed): trust the signature
            logger.warning("%s: could not probe pixel_mask (%s); assuming it is used", model_type, err)
            cached = True
        logger.info("%s: pixel_mask %s the output", model_type, "changes" if cached else "does not change")
        model._hf_galaxy_uses_pixel_mask = cached
    return bool(cached)


# --------------------------------------------------------------------------------------------- backbone
def find_backbone(model: nn.Module) -> nn.Module | None:
    """The convolutional backbone (a transformers ``BackboneMixin``) inside a detector, or None (YOLOS)."""
    from transformers.backbone_utils import BackboneMixin

    for module in model.modules():
        if isinstance(module, BackboneMixin):
            return module
    return None


_STAGE_RE = re.compile(r"(?:stages\.(\d+)|layer(\d+))(?:\.|$)")


def set_backbone_trainable(model: nn.Module, mode: str = "detr") -> dict[str, int]:
    """Choose which backbone parameters train: ``detr`` (stem and first stage frozen, the rest trained),
    ``all``, ``none`` or ``as_built`` (leave the model's choice). Returns trainable/frozen backbone counts."""
    if mode not in ("detr", "all", "none", "as_built"):
        raise ValueError(f"train_backbone must be detr, all, none or as_built; got {mode!r}")
    backbone = find_backbone(model)
    if backbone is None:
        return {"trainable": 0, "frozen": 0}
    if mode != "as_built":
        for name, p in backbone.named_parameters():
            m = _STAGE_RE.search(name)
            if mode == "all":
                p.requires_grad_(True)
            elif mode == "none":
                p.requires_grad_(False)
            else:  # detr: stages are 0-based in HF (stages.N), 1-based in timm (layerN)
                stage = int(m.group(1)) + 1 if m and m.group(1) is not None else int(m.group(2)) if m else 0
                p.requires_grad_(stage >= 2)
    trainable = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in backbone.parameters() if not p.requires_grad)
    logger.info("backbone (%s): %d trainable, %d frozen parameters", mode, trainable, frozen)
    return {"trainable": trainable, "frozen": frozen}


_BLOCK_PARENTS = re.compile(r"(?:^|\.)(?:layers|blocks|layer\d+)$")


def enable_backbone_checkpointing(model: nn.Module) -> int:
    """Checkpoint every trainable residual block of the conv backbone; returns the number of blocks wrapped.

    Each block (a child of a ``layers``/``blocks``/``layerN`` container, e.g. the HF ResNet's
    ``encoder.stages.N.layers.M``) keeps only its input during the forward pass and recomputes its
    activations in the backward pass (``torch.utils.checkpoint``, non-reentrant). Frozen blocks build no
    autograd graph, so they are left alone. Idempotent; :func:`disable_backbone_checkpointing` undoes it.
    """
    backbone = find_backbone(model)
    if backbone is None:
        return 0
    containers = {
        n
        for n, m in backbone.named_modules()
        if _BLOCK_PARENTS.search(n) and isinstance(m, (nn.Sequential, nn.ModuleList))
    }
    wrapped = 0
    for name, module in backbone.named_modules():
        parent = name.rpartition(".")[0]
        if parent not in containers or not name:
            continue
        if not any(p.requires_grad for p in module.parameters()):
            continue
        if getattr(module, "_hf_galaxy_checkpointed", False):
            wrapped += 1
            continue
        forward = module.forward

        def checkpointed(
            *args: Any, __forward: Callable = forward, __module: nn.Module = module, **kwargs: Any
        ):
            if __module.training and torch.is_grad_enabled():
                return checkpoint(__forward, *args, use_reentrant=False, **kwargs)
            return __forward(*args, **kwargs)

        module._hf_galaxy_forward = forward
        module.forward = checkpointed
        module._hf_galaxy_checkpointed = True
        wrapped += 1
    if wrapped == 0:
        logger.warning(
            "backbone checkpointing: no trainable backbone block found (frozen backbone?): "
            "nothing to recompute, no memory saved"
        )
    return wrapped


def disable_backbone_checkpointing(model: nn.Module) -> int:
    """Undo :func:`enable_backbone_checkpointing`; returns the number of blocks restored."""
    n = 0
    for module in model.modules():
        if getattr(module, "_hf_galaxy_checkpointed", False):
            module.forward = module._hf_galaxy_forward
            del module._hf_galaxy_forward
            module._hf_galaxy_checkpointed = False
            n += 1
    return n


# --------------------------------------------------------------------------------------------- augmentation
@dataclass
class DetectionAugmentConfig:
    """Box-aware augmentation: ``rotate90`` (k x 90 degrees), ``flip`` (with the chirality-aware category swap),
    ``scale_jitter`` j (the processed image side is multiplied by a factor in [1 - j, 1 + j])."""

    rotate90: bool = True
    flip: bool = True
    scale_jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.scale_jitter < 1:
            raise ValueError(f"scale_jitter must be in [0, 1), got {self.scale_jitter}")


class DetectionAugment:
    """Random k x 90 degree rotation and chirality-aware mirror flip of an image with its boxes."""

    def __init__(self, categories: Sequence[str], config: DetectionAugmentConfig | None = None) -> None:
        self.config = config or DetectionAugmentConfig()
        self.categories = list(categories)
        self.permutation: list[int] | None = None
        self.flip = False
        if self.config.flip:
            self.permutation = chirality_permutation(self.categories)
            if self.permutation is None:
                logger.warning(
                    "Flip augmentation turned off: the categories %s hold chirality that cannot be "
                    "paired, so a flip would mislabel spirals.",
                    self.categories,
                )
            else:
                self.flip = True

    def rotate(
        self, image: Image.Image, boxes: Sequence[Sequence[float]], k: int
    ) -> tuple[Image.Image, list]:
        """Rotate by ``k`` x 90 degrees counter-clockwise (as displayed); boxes follow exactly."""
        k %= 4
        if k == 0:
            return image, [list(b) for b in boxes]
        w, h = image.size
        ops = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}
        return image.transpose(ops[k]), [_rot90_box(b, k, w, h)[0] for b in boxes]

    def mirror(
        self, image: Image.Image, boxes: Sequence[Sequence[float]], categories: Sequence[int]
    ) -> tuple[Image.Image, list, list[int]]:
        """Left-right mirror; boxes mirrored and chiral categories swapped (clockwise <-> anticlockwise)."""
        if self.permutation is None:
            raise ValueError(f"cannot mirror: chiral categories in {self.categories} cannot be paired")
        w = image.size[0]
        out = [[w - b[0] - b[2], b[1], b[2], b[3]] for b in boxes]
        return (
            image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            out,
            [self.permutation[c] for c in categories],
        )

    def __call__(
        self, image: Image.Image, boxes: Sequence[Sequence[float]], categories: Sequence[int]
    ) -> tuple[Image.Image, list, list[int], float]:
        """Augment one example; returns ``(image, boxes, categories, scale)``; ``scale`` is for the resize."""
        cats = list(categories)
        out = [list(b) for b in boxes]
        if self.config.rotate90:
            image, out = self.rotate(image, out, int(torch.randint(0, 4, ())))
        if self.flip and float(torch.rand(())) < 0.5:
            image, out, cats = self.mirror(image, out, cats)
        j = self.config.scale_jitter
        scale = 1.0 + j * (2 * float(torch.rand(())) - 1) if j else 1.0
        return image, out, cats, scale


def _scaled_size(size: Any, scale: float) -> dict[str, int]:
    get = size.get if hasattr(size, "get") else lambda k, d=None: getattr(size, k, d)
    out = {}
    for key in ("height", "width", "shortest_edge", "longest_edge", "max_height", "max_width"):
        v = get(key)
        if v:
            out[key] = max(16, int(round(v * scale)))
    return out


class DetectionTransform:
    """``Dataset.with_transform`` for the detection layout -> ``pixel_values`` and DETR-style ``labels``.

    Labels hold ``class_labels``, ``boxes`` (normalised cx, cy, w, h relative to the processed image),
    ``size``, ``orig_size`` (pixels of the stored image), ``image_id``, ``area`` and ``iscrowd``.
    """

    def __init__(
        self,
        image_processor: Any,
        categories: Sequence[str],
        *,
        train: bool = False,
        augment: DetectionAugmentConfig | None = None,
    ) -> None:
        self.processor = image_processor
        self.augment = DetectionAugment(categories, augment) if train and augment is not None else None

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"pixel_values": [], "labels": []}
        for image, objects, image_id in zip(batch["image"], batch["objects"], batch["image_id"]):
            image = image.convert("RGB")
            boxes, cats, scale = objects["bbox"], objects["category"], 1.0
            if self.augment is not None:
                image, boxes, cats, scale = self.augment(image, boxes, cats)
            annotation = {
                "image_id": int(image_id),
                "annotations": [
                    {"bbox": list(b), "category_id": int(c), "area": float(b[2] * b[3]), "iscrowd": 0}
                    for b, c in zip(boxes, cats)
                ],
            }
            kwargs: dict[str, Any] = {"do_pad": False, "return_tensors": "pt"}
            if scale != 1.0:
                kwargs["size"] = _scaled_size(self.processor.size, scale)
            enc = self.processor(images=[image], annotations=[annotation], **kwargs)
            out["pixel_values"].append(enc["pixel_values"][0])
            out["labels"].append({k: v for k, v in enc["labels"][0].items()})
        return out


class DetectionCollator:
    """Pad ``pixel_values`` to the batch maximum (bottom/right, zeros) and build ``pixel_mask`` (1 = image).

    ``pixel_mask=False`` (models that do not use it: YOLOS, RT-DETR; see :func:`accepts_pixel_mask`) leaves it
    out and re-expresses the normalised boxes relative to the padded canvas, which is all such a model sees. Every label gets
    ``target_size``: the (height, width) to multiply normalised predictions by to get pixels of the original
    image (``orig_size``, scaled by canvas/size when boxes are canvas-relative).
    """

    def __init__(self, pixel_mask: bool = True, pad_to_multiple_of: int | None = None) -> None:
        self.pixel_mask = pixel_mask
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        values = [e["pixel_values"] for e in examples]
        hmax = max(int(v.shape[-2]) for v in values)
        wmax = max(int(v.shape[-1]) for v in values)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            hmax, wmax = math.ceil(hmax / m) * m, math.ceil(wmax / m) * m
        batch_values = torch.zeros((len(values), values[0].shape[0], hmax, wmax), dtype=values[0].dtype)
        mask = torch.zeros((len(values), hmax, wmax), dtype=torch.long)
        labels = []
        for i, (v, e) in enumerate(zip(values, examples)):
            h, w = int(v.shape[-2]), int(v.shape[-1])
            batch_values[i, :, :h, :w] = v
            mask[i, :h, :w] = 1
            lab = dict(e["labels"])
            orig = torch.as_tensor(lab["orig_size"], dtype=torch.float32)
            if self.pixel_mask:
                lab["target_size"] = orig
            else:
                sx, sy = w / wmax, h / hmax
                boxes = torch.as_tensor(lab["boxes"], dtype=torch.float32).reshape(-1, 4).clone()
                boxes *= torch.tensor([sx, sy, sx, sy])
                lab["boxes"] = boxes
                lab["target_size"] = orig * torch.tensor([hmax / h, wmax / w])
            labels.append(lab)
        batch: dict[str, Any] = {"pixel_values": batch_values, "labels": labels}
        if self.pixel_mask:
            batch["pixel_mask"] = mask
        return batch


# --------------------------------------------------------------------------------------------- metrics
def _xyxy_to_xywh(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def _cxcywh_to_xywh(b: np.ndarray, size_hw: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    h, w = float(size_hw[0]), float(size_hw[1])
    return np.stack(
        [(b[:, 0] - b[:, 2] / 2) * w, (b[:, 1] - b[:, 3] / 2) * h, b[:, 2] * w, b[:, 3] * h], axis=1
    )


def coco_map(
    targets: Sequence[dict[str, Any]],
    detections: Sequence[dict[str, Any]],
    categories: Sequence[str],
    *,
    per_class: bool = True,
) -> dict[str, float]:
    """COCO box metrics with pycocotools ``COCOeval``.

    ``targets``: per image ``{"boxes": (n, 4) xywh absolute, "labels": (n,)}`` (optionally ``"size"`` (h, w));
    ``detections``: per image ``{"boxes": (m, 4) xyxy absolute, "scores": (m,), "labels": (m,)}``.
    Returns ``map``, ``map_50``, ``map_75``, ``map_small/medium/large``, ``mar_1``, ``mar_10``, ``mar_100`` and
    ``map_<category>`` for the categories present in the targets (COCO's -1, "no ground truth", becomes NaN;
    :class:`DetectionMetrics` drops those keys with :func:`finite_metrics` before the ``Trainer`` sees them).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for i, t in enumerate(targets):
        size = t.get("size", (1, 1))
        images.append({"id": i, "height": int(size[0]), "width": int(size[1])})
        for b, c in zip(np.asarray(t["boxes"]).reshape(-1, 4), np.asarray(t["labels"]).reshape(-1)):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(c),
                    "bbox": [float(v) for v in b],
                    "area": float(b[2] * b[3]),
                    "iscrowd": 0,
                }
            )
    for i, d in enumerate(detections):
        for b, s, c in zip(
            _xyxy_to_xywh(d["boxes"]),
            np.asarray(d["scores"]).reshape(-1),
            np.asarray(d["labels"]).reshape(-1),
        ):
            dets.append(
                {"image_id": i, "category_id": int(c), "bbox": [float(v) for v in b], "score": float(s)}
            )
    keys = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100"]
    if not anns:
        logger.warning("coco_map: no ground-truth boxes; mAP is undefined")
        return dict.fromkeys(keys, float("nan"))
    if not dets:
        return dict.fromkeys(keys, 0.0)
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": i, "name": n} for i, n in enumerate(categories)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    out = {k: float(s[j]) for k, j in zip(keys, (0, 1, 2, 3, 4, 5, 6, 7, 8))}
    out = {k: (float("nan") if v < 0 else v) for k, v in out.items()}
    if per_class:
        precision = ev.eval["precision"]  # [iou, recall, class, area, maxdets]
        present = {a["category_id"] for a in anns}
        for k, cid in enumerate(ev.params.catIds):
            if cid not in present:
                continue
            p = precision[:, :, k, 0, -1]
            p = p[p > -1]
            out[f"map_{categories[cid]}"] = float(p.mean()) if p.size else float("nan")
    return out


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


PAD_INDEX = -100
PAD_MULTIPLE = 32
"""Batches are padded to a multiple of the largest backbone stride (RT-DETR's FPN needs it)."""


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
                        "boxes": _cxcywh_to_xywh(t["boxes"], scale),
                        "labels": np.asarray(t["class_labels"]),
                        "size": orig,
                    }
                )
        return finite_metrics(coco_map(targets, detections, self.categories))


def finite_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``metrics`` without the undefined (NaN/inf) values.

    COCO reports -1 for a metric with no ground truth (e.g. ``map_large`` when every box is small), which
    :func:`coco_map` turns into NaN; ``Trainer.save_metrics`` would write that NaN into
    ``eval_results.json`` (not valid JSON) and the model card. The dropped keys are logged.
    """
    out = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    dropped = sorted(set(metrics) - set(out))
    if dropped:
        logger.info("metrics undefined on this split (no ground truth of that kind), left out: %s", dropped)
    return out


# --------------------------------------------------------------------------------------------- trainer
class DetectionTrainer(Trainer):
    """``Trainer`` whose evaluation keeps only ``logits`` and ``pred_boxes`` (plus the label dicts)."""

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
    callbacks: Sequence[Any] = (),
) -> DetectionTrainer:
    """A :class:`DetectionTrainer` with the transforms, the pixel-mask collator and COCO metrics wired in.

    Sets ``remove_unused_columns=False`` and ``eval_do_concat_batches=False`` (both required) and, with
    ``backbone_checkpointing``, checkpoints the backbone blocks on top of transformers' own
    ``gradient_checkpointing`` of the transformer layers.
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
        callbacks=list(callbacks),
    )


# --------------------------------------------------------------------------------------------- predictions
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


def plot_detections(
    images: Sequence[Image.Image],
    detections: Sequence[dict[str, np.ndarray]],
    categories: Sequence[str],
    path: str | Path,
    *,
    truths: Sequence[dict[str, Any]] | None = None,
    score_threshold: float = 0.3,
    columns: int = 4,
) -> Path:
    """Draw predicted boxes (solid, with category and score) and true boxes (dashed) on a grid; save PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = len(images)
    if n == 0:
        raise ValueError("plot_detections: no images")
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax in axes.ravel():
        ax.axis("off")
    for i, (img, det) in enumerate(zip(images, detections)):
        ax = axes.ravel()[i]
        ax.imshow(img)
        if truths is not None:
            t = truths[i]
            for b, c in zip(t["bbox"], t["category"]):
                ax.add_patch(
                    Rectangle(
                        (b[0], b[1]),
                        b[2],
                        b[3],
                        fill=False,
                        ls="--",
                        lw=1.0,
                        ec=colours(int(c) % 10),
                        alpha=0.8,
                    )
                )
        scores = np.asarray(det["scores"])
        keep = scores >= score_threshold
        title = f"{int(keep.sum())} predicted (score >= {score_threshold})"
        if not keep.any() and scores.size:  # an untrained model: show its best guesses anyway
            keep = np.zeros_like(keep)
            keep[np.argsort(-scores)[:3]] = True
            title = f"none >= {score_threshold}; best 3 shown"
        for b, s, c in zip(
            np.asarray(det["boxes"])[keep], np.asarray(det["scores"])[keep], np.asarray(det["labels"])[keep]
        ):
            ax.add_patch(
                Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, lw=1.5, ec=colours(int(c) % 10))
            )
            ax.text(
                b[0],
                b[1],
                f"{categories[int(c)]} {s:.2f}",
                fontsize=6,
                color="white",
                bbox={"facecolor": colours(int(c) % 10), "alpha": 0.7, "pad": 1, "lw": 0},
                va="bottom",
            )
        ax.set_title(title, fontsize=7)
    fig.suptitle("predictions (solid) and true boxes (dashed)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------- recipe
@dataclass
class DetectionScriptArguments:
    """Run-level options of the detection recipe (``recipes/detr.py``)."""

    dataset: str | None = field(
        default=None,
        metadata={
            "help": "synthetic:N, a catalogue file or image folder (boxes made by to_detection), a COCO "
            "folder (annotations/instances_<split>.json) or a save_to_disk DatasetDict (detection layout "
            "or classification layout)."
        },
    )
    precision: str = field(
        default="fp16",
        metadata={"help": "fp16 (default; fp32 on CPU), bf16, fp32 or auto (bf16 where supported)."},
    )
    backbone_checkpointing: bool = field(
        default=True,
        metadata={
            "help": "With --gradient_checkpointing, also checkpoint the conv backbone's residual blocks "
            "(transformers only covers the encoder/decoder layers)."
        },
    )
    train_backbone: str = field(
        default="detr",
        metadata={"help": "detr (stem and first stage frozen), all, none or as_built."},
    )
    eval_split: str = field(
        default="test", metadata={"help": "Split for the final metrics (else validation)."}
    )
    num_plot_images: int = field(default=8, metadata={"help": "Validation images drawn in predictions.png."})
    plot_score_threshold: float = field(default=0.3, metadata={"help": "Smallest score drawn."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Where synthetic:N data is written (default OUTPUT_DIR/synthetic_data)."},
    )

    def __post_init__(self) -> None:
        from hf_galaxy.training import PRECISIONS

        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.train_backbone not in ("detr", "all", "none", "as_built"):
            raise ValueError(
                f"--train_backbone must be detr, all, none or as_built, got {self.train_backbone!r}"
            )


@dataclass
class DetectionModelArguments:
    """Which detector to train."""

    model_name_or_path: str = field(
        default="facebook/detr-resnet-50",
        metadata={
            "help": "Hub id or local checkpoint of any AutoModelForObjectDetection (ignored with "
            "--model_config)."
        },
    )
    model_config: str | None = field(
        default=None,
        metadata={
            "help": "Random-weight model from a config: a preset ("
            + ", ".join(DETECTOR_PRESETS)
            + ")[,key=value...], inline JSON, a JSON file or model_type=...,key=value."
        },
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision."})


@dataclass
class DetectionDataArguments:
    """How the detection set is made: labels, boxes, mosaics, augmentation."""

    image_dir: str | None = field(
        default=None, metadata={"help": "Folder with the cutouts of the catalogue."}
    )
    label_scheme: str = field(default="plurality", metadata={"help": "plurality, clean, votes or column."})
    label_column: str | None = field(default=None, metadata={"help": "Ready label column of the catalogue."})
    question: str | None = field(default=None, metadata={"help": "Decision-tree question to label by."})
    threshold: float = field(default=0.8, metadata={"help": "Winning fraction of the 'clean' scheme."})
    classes: str | None = field(
        default=None, metadata={"help": "Class selection/merge preset or comma list."}
    )
    image_size: int = field(default=800, metadata={"help": "Side the image processor resizes to (pixels)."})
    synthetic_image_size: int = field(default=424, metadata={"help": "Side of synthetic:N cutouts."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training split."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the evaluation splits."})
    box_source: str = field(
        default="auto", metadata={"help": "auto, catalog or segmentation (see detection)."}
    )
    box_k: float = field(default=1.0, metadata={"help": "Catalogue boxes: half-side = k x radius."})
    box_radius: str = field(default="r90", metadata={"help": "Catalogue radius: r90 or r50."})
    extra_objects: bool = field(default=True, metadata={"help": "Add neighbours and stars as objects."})
    keep_empty: bool = field(default=True, metadata={"help": "Keep images without objects as negatives."})
    mosaics: int = field(
        default=0,
        metadata={
            "help": "Mosaic fields made from the training cutouts (0: none); "
            "the evaluation splits get mosaics // 4 each."
        },
    )
    mosaic_only: bool = field(default=False, metadata={"help": "Train/evaluate on the mosaics only."})
    mosaic_size_min: int = field(default=640, metadata={"help": "Smallest mosaic side (pixels)."})
    mosaic_size_max: int = field(default=800, metadata={"help": "Largest mosaic side (pixels)."})
    mosaic_max_iou: float = field(default=0.1, metadata={"help": "Largest IoU between boxes of a mosaic."})
    augment: bool = field(default=True, metadata={"help": "Box-aware augmentation of training images."})
    rotate90: bool = field(default=True, metadata={"help": "Random rotation by multiples of 90 degrees."})
    flip: bool = field(
        default=True, metadata={"help": "Mirror flips with the chirality-aware category swap."}
    )
    scale_jitter: float = field(default=0.2, metadata={"help": "Processed side x U(1-j, 1+j)."})
    num_proc: int | None = field(default=None, metadata={"help": "Processes preparing images and boxes."})

    def augment_config(self) -> DetectionAugmentConfig | None:
        """The :class:`DetectionAugmentConfig` (None when augmentation is off)."""
        if not self.augment:
            return None
        return DetectionAugmentConfig(rotate90=self.rotate90, flip=self.flip, scale_jitter=self.scale_jitter)


def make_detection_parser() -> Any:
    """YAML (``--config``) + CLI parser over the detection dataclasses and ``TrainingArguments``."""
    from hf_galaxy.training import GalaxyArgumentParser

    parser = GalaxyArgumentParser(
        [DetectionScriptArguments, TrainingArguments, DetectionModelArguments, DetectionDataArguments]
    )
    parser.set_defaults(remove_unused_columns=False, eval_do_concat_batches=False, report_to="none")
    return parser


def _find_coco(path: Path) -> dict[str, Path]:
    folder = path / "annotations" if (path / "annotations").is_dir() else path
    found = {}
    for f in sorted(folder.glob("instances_*.json")):
        found[f.stem[len("instances_") :]] = f
    return found


def load_detection_data(
    dataset: str,
    data_args: DetectionDataArguments | None = None,
    *,
    output_dir: str | Path = ".",
    data_dir: str | Path | None = None,
    seed: int = 0,
) -> Any:
    """The detection ``DatasetDict`` for ``--dataset`` (see :class:`DetectionScriptArguments`), with mosaics.

    The result carries ``galaxy_info`` (the loader's facts, see :func:`hf_galaxy.dataset.describe`, plus the
    detection categories, box source, object counts, ``synthetic`` for ``synthetic:N`` and ``mosaics``: the
    number of mosaic fields per split, empty without mosaics) for the model card.
    """
    from datasets import DatasetDict, concatenate_datasets

    from hf_galaxy.detection import detection_card_facts, load_coco, make_mosaics, to_detection
    from hf_galaxy.training import DataArguments, load_training_data

    args = data_args or DetectionDataArguments()
    if not dataset:
        raise ValueError(
            "--dataset is required: synthetic:N, a catalogue, an image folder, a COCO folder or a "
            "saved DatasetDict"
        )
    path = Path(dataset).expanduser()
    coco = _find_coco(path) if path.is_dir() else {}
    box_kwargs = dict(
        source=args.box_source, k=args.box_k, radius=args.box_radius, extra_objects=args.extra_objects
    )
    if coco:
        dsd = DatasetDict({name: load_coco(f, path, keep_empty=args.keep_empty) for name, f in coco.items()})
    elif path.is_file() and path.suffix == ".json":
        dsd = DatasetDict({"train": load_coco(path, keep_empty=args.keep_empty)})
    else:
        cls_args = DataArguments(
            image_dir=args.image_dir,
            label_scheme=args.label_scheme,
            question=args.question,
            threshold=args.threshold,
            label_column=args.label_column,
            classes=args.classes,
            synthetic_image_size=args.synthetic_image_size,
            num_proc=args.num_proc,
        )
        dsd = load_training_data(dataset, cls_args, output_dir=output_dir, data_dir=data_dir, seed=seed)
        first = next(iter(dsd.values()))
        if "objects" not in first.column_names:
            catalog = path if path.is_file() else None
            dsd = to_detection(
                dsd, catalog=catalog, keep_empty=args.keep_empty, num_proc=args.num_proc, **box_kwargs
            )
    info = dict(getattr(dsd, "galaxy_info", None) or {})
    if dataset.startswith("synthetic:"):
        info["synthetic"] = True
    mosaic_counts: dict[str, int] = {}
    if args.mosaics > 0:
        out = {}
        for k, (name, ds) in enumerate(dsd.items()):
            n = args.mosaics if name == "train" else max(1, args.mosaics // 4)
            offset = int(max(ds["image_id"], default=-1)) + 1
            mos = make_mosaics(
                ds,
                n,
                size=(args.mosaic_size_min, args.mosaic_size_max),
                max_iou=args.mosaic_max_iou,
                seed=seed + k,
                image_id_offset=offset,
            )
            out[name] = mos if args.mosaic_only else concatenate_datasets([ds, mos])
            mosaic_counts[name] = len(mos)
        dsd = DatasetDict(out)
    dsd.galaxy_info = {
        **info,
        **detection_card_facts(dsd),
        "mosaics": mosaic_counts,
        "mosaic_only": bool(args.mosaics > 0 and args.mosaic_only),
    }
    return dsd


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


def detection_dataset_facts(dataset_dict: Any) -> dict[str, Any]:
    """What the model card says about a detection ``DatasetDict``.

    :func:`hf_galaxy.dataset.describe` (release, label scheme, split sizes... carried through
    :func:`~hf_galaxy.detection.to_detection` and :func:`load_detection_data` as ``galaxy_info``) plus the
    detection facts (categories, box source, mosaics). ``class_balance`` becomes the boxes per category and
    split; the loader's per-galaxy balance is kept as ``galaxy_class_balance``.
    """
    from hf_galaxy.dataset import describe
    from hf_galaxy.detection import detection_card_facts, detection_info

    try:
        facts = describe(dataset_dict)
    except Exception as err:  # describe degrades on plain DatasetDicts; never fail a run over card facts
        logger.warning("could not describe the dataset for the model card: %s", err)
        facts = {}
    facts = dict(facts)
    if "class_balance" in facts:
        facts["galaxy_class_balance"] = facts.pop("class_balance")
    det = detection_card_facts(dataset_dict)
    for key in ("categories", "object_counts", "detection_splits"):
        facts.setdefault(key, det[key])
    facts["class_balance"] = facts["object_counts"]
    facts["split_sizes"] = {k: len(v) for k, v in dataset_dict.items()}
    facts["detection"] = detection_info(dataset_dict["train"])
    facts.setdefault("mosaics", {})
    return facts


def _truncate(ds: Any, n: int | None) -> Any:
    return ds.select(range(min(n, len(ds)))) if n is not None and ds is not None and n < len(ds) else ds


def run_detection(
    script_args: DetectionScriptArguments,
    training_args: TrainingArguments,
    model_args: DetectionModelArguments,
    data_args: DetectionDataArguments | None = None,
    *,
    dataset_dict: Any = None,
) -> dict[str, float]:
    """The detection recipe: data -> boxes (-> mosaics) -> model -> train -> COCO metrics -> plots -> save.

    Writes to ``output_dir``: the model and image processor (``from_pretrained``-loadable), ``train_results.json``,
    ``eval_results.json`` (validation split), ``test_results.json`` (when the final split is ``test``),
    ``all_results.json``, ``trainer_state.json``, ``predictions.png``, ``training_curves.png``,
    ``hf_galaxy_card.json`` (with the dataset facts of :func:`detection_dataset_facts`) and ``README.md``.
    Returns all metrics.
    """
    from transformers.trainer_utils import get_last_checkpoint, set_seed

    from hf_galaxy.detection import categories_of
    from hf_galaxy.hub.card import CardCallback, GalaxyCardData
    from hf_galaxy.plots import plot_training_curves
    from hf_galaxy.training import apply_precision, preserve_accelerate_state

    data_args = data_args or DetectionDataArguments()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    output_dir = Path(training_args.output_dir)
    precision = apply_precision(training_args, script_args.precision)
    from hf_galaxy.hub import finish_output_dir, take_over_push

    push_to_hub = take_over_push(training_args)  # published once at the end, with the generated card
    set_seed(training_args.seed)
    if dataset_dict is None:
        with training_args.main_process_first(desc="detection data"):
            dataset_dict = load_detection_data(
                script_args.dataset,
                data_args,
                output_dir=output_dir,
                data_dir=script_args.data_dir,
                seed=training_args.seed,
            )
    if "train" not in dataset_dict:
        raise ValueError(f"the dataset has no 'train' split (splits: {list(dataset_dict)})")
    categories = categories_of(dataset_dict)
    val_name = "validation" if "validation" in dataset_dict else None
    final_name = script_args.eval_split if script_args.eval_split in dataset_dict else val_name
    train_raw = _truncate(dataset_dict["train"], data_args.max_train_samples)
    val_raw = _truncate(dataset_dict[val_name], data_args.max_eval_samples) if val_name else None
    final_raw = _truncate(dataset_dict[final_name], data_args.max_eval_samples) if final_name else None

    model, processor = load_detector(
        model_args.model_name_or_path,
        categories,
        model_config=model_args.model_config,
        image_size=data_args.image_size,
        revision=model_args.revision,
    )
    backbone = set_backbone_trainable(model, script_args.train_backbone)

    class _Card(CardCallback):
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            with preserve_accelerate_state():
                super().on_train_begin(*args, **kwargs)

    facts = detection_dataset_facts(dataset_dict)
    if script_args.dataset:
        facts.setdefault("source", script_args.dataset)
    card = GalaxyCardData(
        task="object-detection",
        base_model=None if model_args.model_config else model_args.model_name_or_path,
        model_config=model_args.model_config,
        dataset=facts,
        label_names=categories,
        eval_split=final_name or "validation",
        extra={
            "backbone_parameters": backbone,
            "backbone_checkpointing": bool(
                training_args.gradient_checkpointing and script_args.backbone_checkpointing
            ),
        },
    )
    trainer = build_detection_trainer(
        model,
        processor,
        train_raw,
        val_raw,
        categories,
        training_args,
        augment=data_args.augment_config(),
        backbone_checkpointing=bool(
            training_args.gradient_checkpointing and script_args.backbone_checkpointing
        ),
        callbacks=[_Card(card)],
    )
    resume = training_args.resume_from_checkpoint
    if resume in ("last", "latest", "True", "true"):
        resume = get_last_checkpoint(str(output_dir))
        if resume is None:
            raise FileNotFoundError(f"--resume_from_checkpoint: no checkpoint-* in {output_dir}")
    elif resume is not None and not Path(resume).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {resume}: no such checkpoint directory")
    result = trainer.train(resume_from_checkpoint=resume)
    metrics: dict[str, float] = {**result.metrics, "train_samples": len(train_raw)}
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    if val_raw is not None and final_name != val_name:
        val = trainer.evaluate(metric_key_prefix="eval")
        val["eval_samples"] = len(val_raw)
        trainer.log_metrics("eval", val)
        trainer.save_metrics("eval", val)
        metrics.update(val)
    if final_raw is not None:
        prefix = "test" if final_name == "test" else "eval"
        final_ds = final_raw.with_transform(DetectionTransform(processor, categories))
        final = trainer.evaluate(final_ds, metric_key_prefix=prefix)
        final[f"{prefix}_samples"] = len(final_raw)
        trainer.log_metrics(prefix, final)
        trainer.save_metrics(prefix, final)
        metrics.update(final)
        card.eval_results = card_metrics(final, prefix)
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        plot_training_curves(trainer.state.log_history, output_dir / "training_curves.png")
        shown = val_raw if val_raw is not None else final_raw
        if shown is not None and script_args.num_plot_images > 0:
            rows = shown.select(range(min(script_args.num_plot_images, len(shown))))
            images = [r["image"] for r in rows]
            dets = predict_detections(trainer.model, processor, images, threshold=0.0)
            plot_detections(
                images,
                dets,
                categories,
                output_dir / "predictions.png",
                truths=[r["objects"] for r in rows],
                score_threshold=script_args.plot_score_threshold,
            )
            card.extra["predictions_plot"] = "predictions.png"
        card.precision = precision
        card.save(output_dir)
        finish_output_dir(output_dir, training_args, push_to_hub)
    return metrics
