"""LoRA through peft: target modules derived from ``named_modules()``, the head always trained and saved.

* :func:`apply_lora` wraps a model (attention projections by default, ``"all-linear"``, or name suffixes);
* :func:`save_lora_model` writes ``adapter/`` and, by default, the merged plain model beside it.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from hf_galaxy.models.loading import checkpoint_labels, count_parameters, head_module_names

logger = logging.getLogger(__name__)


_ATTENTION_HINTS = ("attention", "attn")


def _under(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _minimal_suffixes(selected: Sequence[str], others: Sequence[str]) -> list[str]:
    """Shortest dotted name suffixes that match every ``selected`` module and no module in ``others``."""
    out: list[str] = []
    for name in selected:
        parts = name.split(".")
        for k in range(1, len(parts) + 1):
            suffix = ".".join(parts[-k:])
            if not any(o == suffix or o.endswith("." + suffix) for o in others):
                break
        if suffix not in out:
            out.append(suffix)
    return out


def lora_target_modules(model: nn.Module, targets: str | Sequence[str] = "attention") -> list[str]:
    """LoRA target module names derived from ``model.named_modules()`` (never the classification head).

    ``targets``: ``"attention"`` (every ``nn.Linear`` inside an attention block: q/k/v/o projections),
    ``"all-linear"`` (every ``nn.Linear`` of the backbone), or name suffixes (a list or a comma-separated
    string, e.g. ``"q_proj,v_proj"``), each of which must match at least one ``nn.Linear``.
    Returns the shortest name suffixes that select exactly those modules (as peft ``target_modules``).
    """
    heads = head_module_names(model)
    linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    body = [n for n in linear if not _under(n, heads)]
    if isinstance(targets, str) and targets in ("attention", "all-linear"):
        if targets == "all-linear":
            selected = body
        else:
            selected = [
                n for n in body if any(h in p.lower() for p in n.split(".")[:-1] for h in _ATTENTION_HINTS)
            ]
    else:
        wanted = [
            t.strip() for t in (targets.split(",") if isinstance(targets, str) else targets) if t.strip()
        ]
        selected = []
        for t in wanted:
            hits = [n for n in body if n == t or n.endswith("." + t)]
            if not hits:
                leaves = sorted({n.split(".")[-1] for n in body})
                raise ValueError(
                    f"LoRA target {t!r} matches no nn.Linear module of {type(model).__name__}; "
                    f"linear module names end with: {leaves}"
                )
            selected += [h for h in hits if h not in selected]
    if not selected:
        raise ValueError(f"no LoRA target modules found for targets={targets!r} in {type(model).__name__}")
    others = [n for n in linear if n not in set(selected)]
    return _minimal_suffixes(selected, others)


def apply_lora(
    model: nn.Module,
    *,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.1,
    target_modules: str | Sequence[str] = "attention",
    modules_to_save: Sequence[str] | None = None,
    base_model_name_or_path: str | None = None,
) -> Any:
    """Wrap ``model`` with a peft LoRA adapter; the classification head is always trained and saved.

    Returns the ``PeftModel``; its ``lora_summary`` attribute holds r, alpha, dropout, targets,
    modules_to_save and the trainable/total parameter counts (also logged).
    """
    from peft import LoraConfig, get_peft_model

    targets = lora_target_modules(model, target_modules)
    to_save = list(head_module_names(model))
    for extra in modules_to_save or []:
        if extra and extra not in to_save:
            to_save.append(extra)
    config = LoraConfig(
        r=int(r),
        lora_alpha=int(alpha),
        lora_dropout=float(dropout),
        target_modules=targets,
        modules_to_save=to_save,
        bias="none",
    )
    peft_model = get_peft_model(model, config)
    if base_model_name_or_path:
        peft_model.peft_config["default"].base_model_name_or_path = base_model_name_or_path
    trainable, total = count_parameters(peft_model)
    logger.info(
        "LoRA r=%d alpha=%d dropout=%.3g on %s; modules_to_save=%s; trainable params: %d || all params: %d "
        "|| trainable%%: %.4f",
        r,
        alpha,
        dropout,
        targets,
        to_save,
        trainable,
        total,
        100 * trainable / max(total, 1),
    )
    peft_model.lora_summary = {
        "r": int(r),
        "lora_alpha": int(alpha),
        "lora_dropout": float(dropout),
        "target_modules": targets,
        "modules_to_save": to_save,
        "trainable_params": trainable,
        "all_params": total,
    }
    return peft_model


def save_lora_model(
    peft_model: Any,
    output_dir: str | Path,
    image_processor: Any,
    *,
    merge: bool = True,
    is_main_process: bool = True,
) -> dict[str, Path]:
    """Save the adapter to ``output_dir/adapter`` and, with ``merge``, the merged plain model at the top level.

    The merged copy is made with ``deepcopy`` so ``peft_model`` stays usable. Only the main process writes.
    """
    output_dir = Path(output_dir)
    out: dict[str, Path] = {}
    if not is_main_process:
        return out
    adapter_dir = output_dir / "adapter"
    peft_model.save_pretrained(adapter_dir)
    # peft writes a placeholder model card; the project's card is rendered from hf_galaxy_card.json instead
    (adapter_dir / "README.md").unlink(missing_ok=True)
    image_processor.save_pretrained(adapter_dir)
    base_config = peft_model.get_base_model().config
    labels = checkpoint_labels(base_config) or []
    (adapter_dir / "label_names.json").write_text(json.dumps(labels))
    from hf_galaxy.data.tree import TREE_CONFIG_KEY

    tree = getattr(base_config, TREE_CONFIG_KEY, None)
    if tree is not None:  # a whole-tree model: the base model gets its tree back when the adapter is loaded
        (adapter_dir / f"{TREE_CONFIG_KEY}.json").write_text(json.dumps(tree))
    out["adapter"] = adapter_dir
    if merge:
        merged = copy.deepcopy(peft_model).merge_and_unload()
        merged.save_pretrained(output_dir)
        image_processor.save_pretrained(output_dir)
        out["merged"] = output_dir
    return out
