"""Training precision: ``auto|bf16|fp16|fp32``, resolved once per run, never fp16 on a CPU."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from transformers import TrainingArguments

from hf_galaxy.training.arguments import PRECISIONS

logger = logging.getLogger(__name__)


def resolve_precision(requested: str = "auto", *, use_cpu: bool = False) -> tuple[str, str | None]:
    """The precision to train in (``bf16``/``fp16``/``fp32``) and a one-line notice when it differs.

    ``auto``: bf16 on GPUs that support it, fp16 on older CUDA GPUs, fp32 on CPU. A request for
    fp16/bf16 without a GPU (e.g. a YAML written for GPUs) falls back to fp32 with a notice.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    cuda = torch.cuda.is_available() and not use_cpu
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    if requested == "fp32":
        return "fp32", None
    if not cuda:
        if requested == "auto":
            return "fp32", "precision auto: no CUDA GPU, training in fp32 on CPU"
        return (
            "fp32",
            f"precision {requested} asked for, but no CUDA GPU is used: training in fp32 on CPU instead",
        )
    if requested == "auto":
        return (
            ("bf16", None)
            if bf16_ok
            else ("fp16", "precision auto: this GPU has no bf16 support, using fp16")
        )
    if requested == "bf16" and not bf16_ok:
        return "fp16", "precision bf16 asked for, but this GPU has no bf16 support: using fp16"
    return requested, None


def _requested_precision(precision: str, fp16: bool, bf16: bool) -> str:
    if precision == "auto" and (fp16 or bf16):
        return "fp16" if fp16 else "bf16"
    return precision


def _choose(precision: str, fp16: bool, bf16: bool, use_cpu: bool) -> tuple[str, dict[str, bool]]:
    """The precision to train in, and the ``TrainingArguments`` flags that say so; the notice of a
    fallback is logged (at INFO for ``auto``, at WARNING when an explicit request is not followed)."""
    requested = _requested_precision(precision, fp16, bf16)
    chosen, notice = resolve_precision(requested, use_cpu=use_cpu)
    if notice:
        (logger.info if requested == "auto" else logger.warning)(notice)
    flags = {"fp16": chosen == "fp16", "bf16": chosen == "bf16"}
    if chosen == "fp32":
        flags.update(fp16_full_eval=False, bf16_full_eval=False)
    return chosen, flags


def resolve_namespace_precision(ns: dict[str, Any]) -> None:
    """Resolve ``precision`` (and ``fp16``/``bf16``/``use_cpu``) in a parsed namespace, before the dataclasses
    are built: the recipes' parsers call this, so ``TrainingArguments`` never asks for fp16 on a CPU."""
    if not ns.get("use_cpu") and not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # launched as several processes (torchrun / accelerate --multi_gpu) on a machine without GPUs:
        # DDP over gloo on the CPU, instead of each process silently training alone
        logger.warning(
            "no CUDA GPU in a %s-process launch: use_cpu=True (DDP over gloo)", os.environ["WORLD_SIZE"]
        )
        ns["use_cpu"] = True
    chosen, flags = _choose(
        ns.get("precision", "auto"), bool(ns.get("fp16")), bool(ns.get("bf16")), bool(ns.get("use_cpu"))
    )
    ns["precision"] = chosen
    ns.update(flags)


def apply_precision(training_args: TrainingArguments, precision: str = "auto") -> str:
    """Set ``fp16``/``bf16`` (and ``mixed_precision``) on ``training_args`` in place; returns the precision."""
    chosen, flags = _choose(
        precision, bool(training_args.fp16), bool(training_args.bf16), bool(training_args.use_cpu)
    )
    for key, value in flags.items():
        setattr(training_args, key, value)
    if hasattr(training_args, "mixed_precision"):
        training_args.mixed_precision = {"fp16": "fp16", "bf16": "bf16"}.get(chosen, "no")
    return chosen
