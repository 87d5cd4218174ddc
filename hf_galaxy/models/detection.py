"""Detector specifics: which detectors use ``pixel_mask``, and the convolutional backbone's training and
activation checkpointing.

* :func:`enable_backbone_checkpointing`: activation checkpointing of the conv backbone's residual blocks.
  transformers' ``gradient_checkpointing_enable()`` only covers DETR's encoder/decoder layers, whose
  activations are small next to the backbone's, so on its own it costs time and saves little memory.
* :func:`set_backbone_trainable`: in transformers 5.x, ``DetrConvEncoder`` freezes every backbone parameter
  whose name lacks ``stage.1``/``stage.2``/``stage.3``; the HF ResNet names its stages ``stages.N``, so with
  ``use_timm_backbone=False`` the *whole* backbone ends up frozen. ``mode="detr"`` restores the DETR
  convention (stem and first stage frozen, later stages trained).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

logger = logging.getLogger(__name__)


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
