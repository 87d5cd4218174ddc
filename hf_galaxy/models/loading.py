"""Build classifiers and detectors from a Hub id, a local checkpoint or a config, with one set of checks.

* :func:`load_classifier` / :func:`load_detector` -> ``(model, image_processor)`` with ``id2label`` /
  ``label2id`` from the dataset's class (or category) names. Both go through :func:`build_from_config`
  (every ``--model_config`` key, nested configs included, must be a field of the config class) and
  :func:`load_pretrained` (a checkpoint whose head was trained for other labels gets a re-initialised head,
  with a logged notice, also when the number of labels is the same).
* :func:`load_for_inference` loads a training output directory (merged model or ``adapter/``) or a Hub repo.
* :func:`resolve_model_path`: a local directory, a cached Hub snapshot, or a clear error when offline.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hf_galaxy.jsonio import read_json
from hf_galaxy.models.presets import (
    DEFAULT_DETECTOR,
    DEFAULT_MODEL,
    parse_detector_config,
    parse_model_config,
)

logger = logging.getLogger(__name__)

#: Backbone switches of the transformers 4.x detector configs, still accepted (and consumed) by 5.x.
_BACKBONE_LEGACY_KEYS = frozenset(
    {"use_timm_backbone", "use_pretrained_backbone", "backbone", "backbone_kwargs"}
)


class ModelNotFoundError(FileNotFoundError):
    """A model id that is neither a local directory nor available in the local Hugging Face cache."""


def label_maps(class_names: Sequence[str]) -> tuple[dict[int, str], dict[str, int]]:
    """``(id2label, label2id)`` for ``class_names`` in order."""
    id2label = {i: str(n) for i, n in enumerate(class_names)}
    return id2label, {n: i for i, n in id2label.items()}


def checkpoint_labels(config: Any) -> list[str] | None:
    """The label names of a model config in id order (None when it has none)."""
    id2label = getattr(config, "id2label", None) or {}
    if not id2label:
        return None
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def model_label_names(model: nn.Module, where: str = "the model") -> list[str]:
    """A loaded model's class names in id order (``config.id2label``); an error naming ``where`` when the map
    does not cover the ids ``0..num_labels-1``."""
    config = getattr(model, "config", None)
    id2label = getattr(config, "id2label", None) or {}
    n = int(getattr(config, "num_labels", len(id2label)) or len(id2label))
    try:
        return [str(id2label[i]) for i in range(n)]
    except KeyError as err:
        raise ValueError(f"{where}: config.id2label {id2label} does not cover the ids 0..{n - 1}") from err


def config_from_dict(cfg: dict[str, Any], where: str = "--model_config") -> Any:
    """A transformers config from a dict with ``model_type``; a ``backbone_config`` dict becomes a config too
    (a ResNet unless it names another ``model_type``).

    Every key must be a field of the config class (checked against its defaults, since unknown keyword
    arguments would silently become attributes); the error names the key and the class.
    """
    from transformers import AutoConfig

    cfg = dict(cfg)
    model_type = cfg.pop("model_type")
    backbone = cfg.get("backbone_config")
    if isinstance(backbone, dict):  # other sub-configs (CLIP's vision_config, ...) stay dicts for their class
        cfg["backbone_config"] = config_from_dict(
            {"model_type": "resnet", **backbone}, f"{where} backbone_config"
        )
    try:
        reference = AutoConfig.for_model(model_type)
    except (ValueError, KeyError) as err:
        raise ValueError(f"{where}: unknown model_type {model_type!r} ({err})") from err
    import inspect

    params = inspect.signature(type(reference).__init__).parameters
    unknown = [
        key
        for key in cfg
        if not hasattr(reference, key) and key not in params and key not in _BACKBONE_LEGACY_KEYS
    ]
    if unknown:
        raise ValueError(
            f"{where}: {', '.join(repr(k) for k in unknown)} is not a {type(reference).__name__} field"
        )
    try:
        return AutoConfig.for_model(model_type, **cfg)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{where}: cannot build a {model_type!r} config from {cfg}: {err}") from err


def build_from_config(auto_class: Any, cfg: dict[str, Any], label_names: Sequence[str]) -> nn.Module:
    """A randomly initialised ``auto_class`` model (e.g. ``AutoModelForImageClassification``) for ``label_names``
    from a parsed ``--model_config`` dict (see :mod:`hf_galaxy.models.presets`)."""
    config = config_from_dict(cfg)
    config.num_labels = len(label_names)
    config.id2label, config.label2id = label_maps(label_names)
    return auto_class.from_config(config)


def label_head_modules(model: nn.Module) -> list[str]:
    """Names of the modules whose parameter shapes depend on the number of labels (the label-scoring layers).

    Found by building the same architecture with another number of labels on the meta device (no memory,
    no initialisation) and comparing parameter shapes, so it works for any classifier or detector head.
    """
    config = copy.deepcopy(model.config)
    config.num_labels = int(model.config.num_labels) + 3
    if hasattr(config, "use_pretrained_backbone"):
        config.use_pretrained_backbone = False  # a shape probe: never fetch backbone weights
    with torch.device("meta"):
        other = type(model)(config)
    shapes = {name: p.shape for name, p in model.named_parameters()}
    changed = {name for name, p in other.named_parameters() if name in shapes and shapes[name] != p.shape}
    return sorted({name.rpartition(".")[0] for name in changed})


def load_pretrained(
    auto_class: Any,
    name: str,
    label_names: Sequence[str],
    *,
    revision: str | None = None,
) -> tuple[nn.Module, str, Any]:
    """Load checkpoint ``name`` as ``auto_class`` for ``label_names``; returns ``(model, local path, its config)``.

    A head trained for other labels is re-initialised with a logged notice: by ``ignore_mismatched_sizes``
    when the number of labels differs, and by resetting :func:`label_head_modules` when only the names
    differ (the old weights would otherwise silently survive).
    """
    from transformers import AutoConfig

    path = resolve_model_path(name, revision=revision)
    try:
        base_config = AutoConfig.from_pretrained(path, revision=revision)
    except OSError as err:
        raise ModelNotFoundError(f"cannot load the config of model {name!r}: {err}") from err
    old = checkpoint_labels(base_config)
    generic = old is not None and all(lbl == f"LABEL_{i}" for i, lbl in enumerate(old))
    relabel = old is not None and not generic and old != list(label_names)
    if relabel:
        logger.warning(
            "Checkpoint %s has a head for %d labels %s; the dataset has %d labels %s: "
            "the head is re-initialised and trained from scratch.",
            name,
            len(old),
            old[:10],
            len(label_names),
            list(label_names),
        )
    id2label, label2id = label_maps(label_names)
    model = auto_class.from_pretrained(
        path,
        revision=revision,
        num_labels=len(label_names),
        id2label=id2label,
        label2id=label2id,
        ignore_mismatched_sizes=True,
    )
    if relabel and len(old) == len(label_names):
        for head in label_head_modules(model):
            for module in model.get_submodule(head).modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    return model, path, base_config


def load_image_processor(
    path: str, model_type: str, default_size: int, *, revision: str | None = None, size: int | None = None
) -> Any:
    """The checkpoint's image processor (resizing to ``size`` squares when given), or the model type's
    default at ``size or default_size`` with a notice when the checkpoint has none."""
    from transformers import AutoImageProcessor

    kwargs = {"size": {"height": int(size), "width": int(size)}} if size is not None else {}
    try:
        return AutoImageProcessor.from_pretrained(path, revision=revision, **kwargs)
    except (OSError, ValueError):
        side = int(size or default_size)
        logger.warning(
            "No image processor saved with %s; using the %s default at %d px", path, model_type, side
        )
        return default_image_processor(model_type, side)


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


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


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
    is ignored) and the model type's image processor at the config's ``image_size``, else ``image_size`` (the
    prepared image size: CNNs have no input size of their own), else 224.
    Otherwise ``model_name_or_path`` (Hub id or local directory, default :data:`DEFAULT_MODEL`) is loaded;
    a head trained for other labels is re-initialised with a logged notice.
    """
    from transformers import AutoModelForImageClassification

    if model_config is not None:
        cfg = parse_model_config(model_config)
        from transformers import AutoConfig

        if image_size is not None and hasattr(AutoConfig.for_model(cfg["model_type"]), "image_size"):
            cfg.setdefault("image_size", int(image_size))
        model = build_from_config(AutoModelForImageClassification, cfg, class_names)
        size = getattr(model.config, "image_size", None) or image_size or 224
        return model, default_image_processor(model.config.model_type, int(size))
    model, path, config = load_pretrained(
        AutoModelForImageClassification, model_name_or_path or DEFAULT_MODEL, class_names, revision=revision
    )
    default_size = getattr(config, "image_size", None) or image_size or 224
    return model, load_image_processor(path, config.model_type, default_size, revision=revision)


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
    config's image size). Otherwise the checkpoint (default :data:`DEFAULT_DETECTOR`) is loaded with the
    classifier's checks: a head trained for other categories is re-initialised, and the processor resizes
    to ``image_size`` when given.
    """
    from transformers import AutoModelForObjectDetection

    if model_config is not None:
        cfg = parse_detector_config(model_config)
        if cfg["model_type"] == "yolos" and image_size is not None:
            cfg["image_size"] = [int(image_size), int(image_size)]
        model = build_from_config(AutoModelForObjectDetection, cfg, categories)
        config = model.config
        size = image_size or (config.image_size[0] if config.model_type == "yolos" else 800)
        return model, default_image_processor(config.model_type, int(size))
    model, path, config = load_pretrained(
        AutoModelForObjectDetection, model_name_or_path or DEFAULT_DETECTOR, categories, revision=revision
    )
    return model, load_image_processor(path, config.model_type, 800, revision=revision, size=image_size)


def checkpoint_dir(model_name_or_path: str, revision: str | None = None) -> Path:
    """The local folder of a checkpoint: a directory, a cached Hub repo, or a Hub repo downloaded now when the
    Hub is reachable (:func:`resolve_model_path`'s errors otherwise)."""
    resolved = resolve_model_path(model_name_or_path, revision=revision)
    path = Path(resolved)
    if not path.is_dir():  # a Hub id that is not cached yet and the Hub is reachable: download it
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(resolved, revision=revision))
    return path


def load_for_inference(model_name_or_path: str, revision: str | None = None) -> tuple[nn.Module, Any]:
    """Load a trained classifier (output directory, its ``adapter/`` directory, or a Hub repo) in eval mode."""
    from transformers import AutoModelForImageClassification

    path = checkpoint_dir(model_name_or_path, revision)
    if (path / "config.json").is_file():
        model = AutoModelForImageClassification.from_pretrained(path)
        processor_dir = path
    elif (path / "adapter_config.json").is_file():
        from peft import PeftConfig, PeftModel

        peft_config = PeftConfig.from_pretrained(path)
        base = peft_config.base_model_name_or_path
        if not base:
            raise ModelNotFoundError(f"adapter {path} does not name its base model (base_model_name_or_path)")
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(resolve_model_path(base))
        for key, value in _adapter_label_kwargs(path).items():  # the adapter's labels (and tree) win
            setattr(config, key, value)
        base_model = AutoModelForImageClassification.from_pretrained(
            resolve_model_path(base), config=config, ignore_mismatched_sizes=True
        )
        model = PeftModel.from_pretrained(base_model, path).merge_and_unload()
        processor_dir = path
    else:
        raise ModelNotFoundError(f"{path} holds neither config.json nor adapter_config.json")
    model.eval()
    return model, checkpoint_processor(processor_dir)


def checkpoint_processor(folder: str | Path) -> Any:
    """The image processor saved in a checkpoint folder; :class:`ModelNotFoundError` when it has none."""
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(f"{folder} has no preprocessor_config.json: {err}") from err


def _adapter_label_kwargs(adapter_dir: Path) -> dict[str, Any]:
    """The config overrides an adapter folder records: its labels and, for a whole-tree model, its tree."""
    from hf_galaxy.data.tree import TREE_CONFIG_KEY

    labels_file = adapter_dir / "label_names.json"
    if not labels_file.is_file():
        return {}
    names = read_json(labels_file, mapping=False)
    id2label, label2id = label_maps(names)
    out: dict[str, Any] = {"num_labels": len(names), "id2label": id2label, "label2id": label2id}
    tree_file = adapter_dir / f"{TREE_CONFIG_KEY}.json"
    if tree_file.is_file():
        out[TREE_CONFIG_KEY] = read_json(tree_file)
    return out
