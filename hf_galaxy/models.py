"""Build image classifiers from a Hub id, a local checkpoint or a config, and wrap them with LoRA.

* :func:`load_classifier` -> ``(model, image_processor)`` with ``id2label``/``label2id`` from the dataset's
  class names. A checkpoint whose head has other labels gets a re-initialised head (logged).
  ``model_config`` builds a randomly initialised model from a config instead (tests, offline demo).
* :func:`apply_lora` wraps a model with peft LoRA; target modules are derived from ``named_modules()``
  (attention projections by default, ``"all-linear"``, or explicit name suffixes); the classification head
  is always in ``modules_to_save``.
* :func:`load_for_inference` loads a training output directory (merged model or ``adapter/``) or Hub repo.

``model_config`` specification (``--model_config``), any of:

* a path to a JSON file (a ``config.json``);
* an inline JSON object: ``'{"model_type": "vit", "hidden_size": 64, "num_hidden_layers": 2}'``;
* comma-separated ``key=value`` pairs, values parsed as JSON when possible:
  ``model_type=vit,hidden_size=64,num_hidden_layers=2,num_attention_heads=4,image_size=64,patch_size=8``;
* a preset name from :data:`CONFIG_PRESETS` (``vit-tiny``, ``vit-mini``), optionally followed by
  ``,key=value`` overrides: ``vit-mini,image_size=48``.

``model_type`` defaults to ``vit``.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "google/vit-base-patch16-224-in21k"

CONFIG_PRESETS: dict[str, dict[str, Any]] = {
    # for unit tests: ~30k parameters
    "vit-tiny": {
        "model_type": "vit",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "image_size": 32,
        "patch_size": 8,
    },
    # for the CPU demo: ~0.4M parameters, 64 px images, 8 px patches
    "vit-mini": {
        "model_type": "vit",
        "hidden_size": 96,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 192,
        "image_size": 64,
        "patch_size": 8,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    },
}

# name fragments of attention blocks (module path components) used to find attention projections
_ATTENTION_HINTS = ("attention", "attn")


class ModelNotFoundError(FileNotFoundError):
    """A model id that is neither a local directory nor available in the local Hugging Face cache."""


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_model_config(spec: str | dict[str, Any]) -> dict[str, Any]:
    """Parse a ``--model_config`` specification (see the module docstring) into a config dict."""
    if isinstance(spec, dict):
        out = dict(spec)
    else:
        text = spec.strip()
        if not text:
            raise ValueError("--model_config is empty")
        path = Path(text).expanduser()
        if text.startswith("{"):
            try:
                out = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"--model_config: invalid inline JSON ({err}): {text!r}") from err
        elif path.suffix == ".json" or path.is_file():
            if not path.is_file():
                raise FileNotFoundError(f"--model_config: JSON file {path} does not exist")
            try:
                out = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"--model_config: {path} is not valid JSON ({err})") from err
        else:
            out = {}
            for i, part in enumerate(p.strip() for p in text.split(",")):
                if not part:
                    continue
                if "=" not in part:
                    if i == 0 and part in CONFIG_PRESETS:
                        out.update(CONFIG_PRESETS[part])
                        continue
                    raise ValueError(
                        f"--model_config: expected key=value, a preset ({', '.join(CONFIG_PRESETS)}), "
                        f"a JSON file or inline JSON; got {part!r} in {text!r}"
                    )
                key, value = part.split("=", 1)
                out[key.strip()] = _parse_value(value.strip())
        if not isinstance(out, dict):
            raise ValueError(f"--model_config must describe a JSON object, got {type(out).__name__}")
    out.setdefault("model_type", "vit")
    return out


def _label_maps(class_names: Sequence[str]) -> tuple[dict[int, str], dict[str, int]]:
    id2label = {i: str(n) for i, n in enumerate(class_names)}
    return id2label, {n: i for i, n in id2label.items()}


def default_image_processor(model_type: str, image_size: int, **kwargs: Any) -> Any:
    """The model type's image processor (PIL backend when torchvision is absent) at ``image_size``."""
    import transformers
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    names = IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type) or IMAGE_PROCESSOR_MAPPING_NAMES["vit"]
    if isinstance(names, dict):
        cls_name = names.get("pil") or next(iter(names.values()))
    elif isinstance(names, (tuple, list)):
        cls_name = next(n for n in names if n)
    else:
        cls_name = names
    cls = getattr(transformers, cls_name)
    return cls(size={"height": int(image_size), "width": int(image_size)}, **kwargs)


def resolve_model_path(name_or_path: str, revision: str | None = None) -> str:
    """A local directory for ``name_or_path``, or the Hub id itself when it may be downloaded.

    Raises :class:`ModelNotFoundError` naming the model when it is neither a directory nor in the local
    Hugging Face cache while the Hub is offline (``HF_HUB_OFFLINE=1``).
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            raise ModelNotFoundError(
                f"{path} is a directory but holds no config.json (nor adapter_config.json): not a model checkpoint"
            )
        return str(path)
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    hint = (
        f"Download it where the Hub is reachable (`hf download {name_or_path} --local-dir DIR`) and pass "
        "that directory instead (--model_name_or_path DIR to train, --model DIR to evaluate or predict), "
        "or train a model built from a config without weights with --model_config."
    )
    if looks_local and not path.exists():
        raise ModelNotFoundError(f"model directory {path} does not exist")
    try:
        return snapshot_download(name_or_path, revision=revision, local_files_only=True)
    except HFValidationError as err:
        raise ModelNotFoundError(
            f"{name_or_path!r} is neither an existing directory nor a valid Hub model id ({err})"
        ) from err
    except (LocalEntryNotFoundError, OSError) as err:
        if constants.HF_HUB_OFFLINE:
            raise ModelNotFoundError(
                f"Model {name_or_path!r} was not found locally: it is not a directory and not in the Hugging "
                f"Face cache ({constants.HF_HUB_CACHE}), and the Hub is offline (HF_HUB_OFFLINE=1). {hint}"
            ) from err
        return name_or_path


def _backbone(model: nn.Module) -> nn.Module | None:
    """The backbone child of ``model``, found by identity (never by name).

    ``model.base_model`` (the ``base_model_prefix`` attribute) when that is a direct child. Some classifiers
    name their backbone differently from the prefix (CLIP/SigLIP: prefix ``clip``/``siglip``, child
    ``vision_model``), so ``base_model`` falls back to the model itself; the backbone is then the direct
    child with the most parameters (a classification head is a small fraction of the model).
    """
    children = [child for _, child in model.named_children()]
    base = getattr(model, "base_model", None)
    if base is None:
        base = getattr(model, getattr(model, "base_model_prefix", "") or "", None)
    if base is not None and any(base is child for child in children):
        return base
    sized = [(sum(p.numel() for p in child.parameters()), i) for i, child in enumerate(children)]
    sized = [(n, i) for n, i in sized if n > 0]
    if len(sized) < 2:
        return None
    return children[max(sized)[1]]


def head_module_names(model: nn.Module) -> list[str]:
    """Names of the classification-head modules: the direct children other than the backbone (e.g. ``classifier``).

    The backbone is compared by identity with ``model.base_model`` (see :func:`_backbone`), not by name.
    """
    backbone = _backbone(model)
    heads = (
        [
            name
            for name, child in model.named_children()
            if child is not backbone and any(True for _ in child.parameters())
        ]
        if backbone is not None
        else []
    )
    if not heads:
        n_labels = getattr(getattr(model, "config", None), "num_labels", None)
        heads = [
            n for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == n_labels
        ]
    if not heads:
        raise ValueError(f"cannot find the classification head of {type(model).__name__}")
    return heads


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


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


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
    logger.warning(
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


def _checkpoint_labels(config: Any) -> list[str] | None:
    id2label = getattr(config, "id2label", None) or {}
    if not id2label:
        return None
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def load_classifier(
    model_name_or_path: str | None,
    class_names: Sequence[str],
    *,
    model_config: str | dict[str, Any] | None = None,
    image_size: int | None = None,
    revision: str | None = None,
) -> tuple[nn.Module, Any]:
    """An ``AutoModelForImageClassification`` for ``class_names`` and its image processor.

    With ``model_config`` the model is built from that config with random weights (``model_name_or_path``
    is ignored) and the model type's image processor at the config's ``image_size`` (or ``image_size``).
    Otherwise ``model_name_or_path`` (Hub id or local directory, default :data:`DEFAULT_MODEL`) is loaded;
    a head trained for other labels is re-initialised with a logged notice.
    """
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    id2label, label2id = _label_maps(class_names)
    if model_config is not None:
        cfg = parse_model_config(model_config)
        model_type = cfg.pop("model_type")
        if image_size is not None and "image_size" not in cfg:
            cfg["image_size"] = int(image_size)
        try:
            config = AutoConfig.for_model(model_type, **cfg)
        except (ValueError, KeyError) as err:
            raise ValueError(
                f"--model_config: cannot build a {model_type!r} config from {cfg}: {err}"
            ) from err
        reference = AutoConfig.for_model(model_type)  # unknown kwargs become attributes: compare to defaults
        for key in cfg:
            if not hasattr(reference, key):
                raise ValueError(f"--model_config: {key!r} is not a {type(config).__name__} field")
        config.num_labels = len(class_names)
        config.id2label, config.label2id = id2label, label2id
        model = AutoModelForImageClassification.from_config(config)
        size = getattr(config, "image_size", None) or image_size or 224
        processor = default_image_processor(model_type, int(size))
        return model, processor

    name = model_name_or_path or DEFAULT_MODEL
    path = resolve_model_path(name, revision=revision)
    try:
        base_config = AutoConfig.from_pretrained(path, revision=revision)
    except OSError as err:
        raise ModelNotFoundError(f"cannot load the config of model {name!r}: {err}") from err
    old = _checkpoint_labels(base_config)
    generic = old is not None and all(lbl == f"LABEL_{i}" for i, lbl in enumerate(old))
    relabel = old is not None and not generic and old != list(class_names)
    if relabel:
        logger.warning(
            "Checkpoint %s has a classification head for %d labels %s; the dataset has %d labels %s: "
            "the head is re-initialised (ignore_mismatched_sizes=True) and trained from scratch.",
            name,
            len(old),
            old[:10],
            len(class_names),
            list(class_names),
        )
    model = AutoModelForImageClassification.from_pretrained(
        path,
        revision=revision,
        num_labels=len(class_names),
        id2label=id2label,
        label2id=label2id,
        ignore_mismatched_sizes=True,
    )
    if relabel and len(old) == len(class_names):
        # same shape, different meaning: the old weights would silently survive, so reset them
        for head in head_module_names(model):
            for module in model.get_submodule(head).modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    try:
        processor = AutoImageProcessor.from_pretrained(path, revision=revision)
    except (OSError, ValueError):
        size = getattr(base_config, "image_size", None) or image_size or 224
        logger.warning(
            "No image processor saved with %s; using the %s default at %d px",
            name,
            base_config.model_type,
            size,
        )
        processor = default_image_processor(base_config.model_type, int(size))
    return model, processor


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
    labels = _checkpoint_labels(peft_model.get_base_model().config) or []
    (adapter_dir / "label_names.json").write_text(json.dumps(labels))
    out["adapter"] = adapter_dir
    if merge:
        merged = copy.deepcopy(peft_model).merge_and_unload()
        merged.save_pretrained(output_dir)
        image_processor.save_pretrained(output_dir)
        out["merged"] = output_dir
    return out


def load_for_inference(model_name_or_path: str, revision: str | None = None) -> tuple[nn.Module, Any]:
    """Load a trained classifier (output directory, its ``adapter/`` directory, or a Hub repo) in eval mode."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    resolved = resolve_model_path(model_name_or_path, revision=revision)
    path = Path(resolved)
    if not path.is_dir():  # a Hub id that is not cached yet and the Hub is reachable: download it
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(resolved, revision=revision))
    if (path / "config.json").is_file():
        model = AutoModelForImageClassification.from_pretrained(path)
        processor_dir = path
    elif (path / "adapter_config.json").is_file():
        from peft import PeftConfig, PeftModel

        peft_config = PeftConfig.from_pretrained(path)
        base = peft_config.base_model_name_or_path
        if not base:
            raise ModelNotFoundError(f"adapter {path} does not name its base model (base_model_name_or_path)")
        base_model = AutoModelForImageClassification.from_pretrained(
            resolve_model_path(base), ignore_mismatched_sizes=True, **_adapter_label_kwargs(path)
        )
        model = PeftModel.from_pretrained(base_model, path).merge_and_unload()
        processor_dir = path
    else:
        raise ModelNotFoundError(f"{path} holds neither config.json nor adapter_config.json")
    try:
        processor = AutoImageProcessor.from_pretrained(processor_dir)
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(f"{processor_dir} has no preprocessor_config.json: {err}") from err
    model.eval()
    return model, processor


def _adapter_label_kwargs(adapter_dir: Path) -> dict[str, Any]:
    labels_file = adapter_dir / "label_names.json"
    if not labels_file.is_file():
        return {}
    names = json.loads(labels_file.read_text())
    id2label, label2id = _label_maps(names)
    return {"num_labels": len(names), "id2label": id2label, "label2id": label2id}
