"""Render the model card (README.md) of a training output directory from its card data and files.

The card is rendered by a pure function (:func:`render_model_card`) through a Jinja template packaged in
``hf_galaxy.model_cards`` (``classification.jinja``, ``detection.jinja``, ``lora_adapter.jinja``). Its YAML
header holds only whitelisted keys and is validated locally (:func:`hf_galaxy.hub.validate.validate_card_metadata`)
after parsing the rendered text back with ``huggingface_hub.ModelCard``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

from hf_galaxy.hub.card import CARD_DATA_FILENAME, GalaxyCardData, log_table_from_history
from hf_galaxy.hub.references import CITATIONS, citation_keys, describe_class, release_info
from hf_galaxy.hub.sanitize import basename, looks_like_local_path, strip_local_paths
from hf_galaxy.hub.validate import validate_card_metadata

logger = logging.getLogger(__name__)

DEFAULT_LICENSE = "mit"
README_NAME = "README.md"
#: Plots a card embeds when they exist in the output directory, with their captions.
PLOTS: dict[str, str] = {
    "confusion_matrix.png": "Confusion matrix on the evaluation split",
    "training_curves.png": "Training and validation curves",
    "sample_grid.png": "Sample galaxies with their labels",
    "reconstructions.png": "Held-out galaxies, the masked input and the autoencoder's reconstruction",
    "tree_fractions.png": "Predicted against volunteer vote fractions, one panel per question",
}
PLACEHOLDER_REPO = "<namespace>/<model-name>"

#: eval-result key -> (model-index metric type, display name, metric args).
_METRICS: dict[str, tuple[str, str, dict | None]] = {
    "accuracy": ("accuracy", "Accuracy", None),
    "macro_f1": ("f1", "Macro F1", {"average": "macro"}),
    "f1_macro": ("f1", "Macro F1", {"average": "macro"}),
    "top2_accuracy": ("top_2_accuracy", "Top-2 accuracy", None),
    "ece": ("ece", "Expected calibration error (15 bins)", None),
    "vote_rmse": ("rmse", "Vote-fraction RMSE", None),
    "tree_rmse": ("rmse", "Vote-fraction RMSE (every question)", None),
    "tree_mae": ("mae", "Vote-fraction MAE (every question)", None),
    "tree_calibration": ("calibration_error", "Vote-fraction calibration error (15 bins)", None),
    "map": ("map", "mAP@[.50:.95]", None),
    "map_50": ("map_50", "mAP@.50", None),
    "map_75": ("map_75", "mAP@.75", None),
}
_SPLIT_PREFIXES = ("test_", "eval_", "validation_")
#: Table headers that plain capitalisation would get wrong.
_HEADERS = {
    "ece": "ECE",
    "macro_f1": "Macro F1",
    "vote_rmse": "Vote RMSE",
    "vote_mae": "Vote MAE",
    "top2_accuracy": "Top-2 accuracy",
    "map": "mAP",
    "map_50": "mAP@.50",
    "map_75": "mAP@.75",
    "nll": "NLL",
    "id": "Id",
}
#: Card-data ``extra`` key set on published card data whose (local) base model was reduced to its base name.
BASE_MODEL_LOCAL_KEY = "base_model_is_local"


def _environment() -> jinja2.Environment:
    root = resources.files("hf_galaxy.model_cards")

    def load(name: str) -> str | None:
        path = root.joinpath(name)
        return path.read_text(encoding="utf-8") if path.is_file() else None

    return jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def is_hub_repo_id(value: str | None) -> bool:
    """True when ``value`` looks like a Hub repo id (``name`` or ``namespace/name``) and is not a local path."""
    if not value or os.path.exists(value) or value.startswith((".", "/", "~")) or "\\" in value:
        return False
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def normalise_metrics(results: dict[str, Any]) -> dict[str, float]:
    """Strip ``test_``/``eval_`` prefixes and keep finite numbers (runtime/speed entries are dropped)."""
    out: dict[str, float] = {}
    for key, value in results.items():
        name = key
        for prefix in _SPLIT_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                break
        if name in ("epoch", "runtime", "samples_per_second", "steps_per_second", "total_flos"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        out.setdefault(name, float(value))
    return out


def _read_json(path: Path) -> Any:
    from hf_galaxy.jsonio import read_json

    try:
        return read_json(path, mapping=False)
    except (OSError, ValueError) as err:
        logger.warning("could not read %s: %s", path, err)
        return None


def _final_metrics(card: GalaxyCardData, output_dir: Path) -> dict[str, float]:
    if card.eval_results:
        return normalise_metrics(card.eval_results)
    for name in ("test_results.json", "eval_results.json", "all_results.json"):
        data = _read_json(output_dir / name) if (output_dir / name).is_file() else None
        if isinstance(data, dict):
            metrics = normalise_metrics(data)
            if metrics:
                return metrics
    return {}


def _log_table(card: GalaxyCardData, output_dir: Path) -> list[dict[str, Any]]:
    if card.log_table:
        return card.log_table
    state = output_dir / "trainer_state.json"
    data = _read_json(state) if state.is_file() else None
    history = data.get("log_history") if isinstance(data, dict) else None
    return log_table_from_history(history) if isinstance(history, list) else []


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> list[str]:
    """Markdown table lines (header, separator, rows) of ``rows``; numbers right-aligned, floats to 4 places."""
    if not rows:
        return []
    if columns is None:
        columns = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
    head = "| " + " | ".join(_HEADERS.get(c, c.replace("_", " ").capitalize()) for c in columns) + " |"
    numeric = [
        all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) and i > 0
        for i, c in enumerate(columns)
    ]
    sep = "|" + "|".join("---:" if num else ":---" for num in numeric) + "|"
    body = ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return [head, sep, *body]


def _label_rows(card: GalaxyCardData, metrics: dict[str, float]) -> list[dict[str, Any]]:
    dataset = card.dataset or {}
    balance = (dataset.get("class_balance") or {}).get("train") or {}
    rows = []
    for i, name in enumerate(card.label_names):
        row: dict[str, Any] = {
            "id": i,
            "name": f"`{name}`",
            "meaning": describe_class(name, dataset.get("question")) or "-",
        }
        if balance:
            row["train_examples"] = balance.get(name, 0)
        if f"precision_{name}" in metrics:
            row["precision"] = metrics[f"precision_{name}"]
        if f"recall_{name}" in metrics:
            row["recall"] = metrics[f"recall_{name}"]
        rows.append(row)
    return rows


def _tree_rows(tree: dict[str, Any] | None, metrics: dict[str, float]) -> list[dict[str, Any]]:
    """One row per question of a whole-tree model: its answers, when it is asked, and its final metrics."""
    if not tree:
        return []
    rows = []
    for q in tree.get("questions", []):
        name = q["name"]
        parent = q.get("parent")
        confident = metrics.get(f"{name}_confident")
        rows.append(
            {
                "question": f"`{name}`",
                "answers": ", ".join(q["answers"]),
                "asked_after": f"{parent[0]}: {parent[1].replace('!', 'not ')}" if parent else "always",
                "galaxies_answered": metrics.get(f"{name}_answered"),
                "vote_rmse": metrics.get(f"{name}_rmse"),
                "vote_mae": metrics.get(f"{name}_mae"),
                "calibration": metrics.get(f"{name}_calibration"),
                "confident_accuracy": metrics.get(f"{name}_accuracy"),
                "confident_galaxies": confident,
            }
        )
    return rows


def eval_results(
    metrics: dict[str, float], *, task: str, split: str, dataset_name: str, dataset_type: str
) -> list[EvalResult]:
    """model-index entries (accuracy, macro-F1, ECE, vote RMSE, mAP, ...) for the headline ``metrics``; none
    for an encoder (its reconstruction loss is no benchmark result)."""
    if task == "image-feature-extraction":
        return []
    task_name = "Object Detection" if task == "object-detection" else "Image Classification"
    results = []
    seen: set[str] = set()
    for key, (metric_type, metric_name, args) in _METRICS.items():
        value = metrics.get(key)
        if metric_type in seen or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            continue
        seen.add(metric_type)
        results.append(
            EvalResult(
                task_type=task,
                task_name=task_name,
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                dataset_split=split,
                metric_type=metric_type,
                metric_name=metric_name,
                metric_value=round(float(value), 6),
                metric_args=args,
            )
        )
    return results


def _slug(text: str) -> str:
    return (
        "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-") or "galaxy-zoo"
    )


def dataset_name_and_type(dataset: dict[str, Any] | None) -> tuple[str, str]:
    """The model-index ``dataset.name`` and ``dataset.type`` of a run's dataset facts.

    The name is the Galaxy Zoo release's full name (or the recorded release, or "Galaxy Zoo"); the type is
    the Hub dataset id when the data came from the Hub, else a slug of the name. Local paths never appear.
    """
    dataset = dataset or {}
    release = dataset.get("release")
    if isinstance(release, str) and looks_like_local_path(release):
        release = None
    info = release_info(release)
    dataset_id = dataset.get("dataset_id")
    name = (info[0] if info else release) or "Galaxy Zoo"
    return str(name), str(dataset_id or _slug(str(name)))


def hub_base_model(card: GalaxyCardData) -> str | None:
    """The card's base model when it is a Hub repo id (``None`` for a local checkpoint or none at all)."""
    if card.extra.get(BASE_MODEL_LOCAL_KEY) or not is_hub_repo_id(card.base_model):
        return None
    return card.base_model


def display_name(value: str | None) -> str | None:
    """``value`` for display in a published card: a local path is reduced to its base name."""
    if value and looks_like_local_path(value):
        return basename(value)
    return value


def build_metadata(
    card: GalaxyCardData,
    *,
    model_name: str,
    metrics: dict[str, float],
    license: str,
    adapter: bool = False,
) -> ModelCardData:
    """The YAML metadata of the card (only whitelisted keys)."""
    dataset_id = (card.dataset or {}).get("dataset_id")
    dataset_name, dataset_type = dataset_name_and_type(card.dataset)
    tags = ["galaxy-zoo", "astronomy", card.task, "vision", "hf-galaxy"]
    if card.lora:
        tags.append("lora")
    if card.soft_labels:
        tags.append("vote-fractions")
    tags.extend(str(t) for t in card.extra.get("tags", []) if t)
    results = eval_results(
        metrics, task=card.task, split=card.eval_split, dataset_name=dataset_name, dataset_type=dataset_type
    )
    base_model = hub_base_model(card)
    return ModelCardData(
        license=license,
        library_name="peft" if adapter else "transformers",
        pipeline_tag=card.task,
        tags=list(dict.fromkeys(tags)),
        base_model=base_model,
        datasets=[dataset_id] if dataset_id else None,
        metrics=sorted({r.metric_type for r in results}) or None,
        # huggingface_hub folds model_name into model-index; without results it would stay a stray key
        model_name=model_name if results else None,
        eval_results=results or None,
    )


def render_model_card(
    output_dir: str | os.PathLike,
    *,
    card_data: GalaxyCardData | None = None,
    repo_id: str | None = None,
    license: str | None = None,
    adapter: bool = False,
    validate: bool = True,
) -> str:
    """Render the model card of ``output_dir`` and return its text (README.md content).

    Args:
        output_dir: A training output directory (reads ``hf_galaxy_card.json``, metrics JSON files and plots).
        card_data: Card data to use instead of ``output_dir/hf_galaxy_card.json``.
        repo_id: The repo the card is published to (used by the "how to use" snippet); defaults to
            ``card_data.extra["hub_model_id"]`` or a placeholder.
        license: A Hub license id; defaults to ``card_data.extra["license"]`` or ``"mit"``.
        adapter: Render the LoRA-adapter card (``library_name: peft``) instead of the full-model card.
        validate: Parse the rendered card back with huggingface_hub and validate its metadata.

    Raises:
        CardValidationError: the metadata is invalid (the error names the offending key).
    """
    output_dir = Path(output_dir)
    card = card_data if card_data is not None else GalaxyCardData.load(output_dir)
    repo_id = repo_id or card.extra.get("hub_model_id") or PLACEHOLDER_REPO
    license = license or card.extra.get("license") or DEFAULT_LICENSE
    model_name = card.extra.get("model_name") or (
        repo_id.split("/")[-1] if repo_id != PLACEHOLDER_REPO else output_dir.resolve().name
    )
    metrics = _final_metrics(card, output_dir)
    if adapter and not card.lora:
        raise ValueError(
            f"{output_dir}: an adapter card needs LoRA settings in {CARD_DATA_FILENAME} ('lora')"
        )
    metadata = build_metadata(card, model_name=model_name, metrics=metrics, license=license, adapter=adapter)
    if validate:
        validate_card_metadata(metadata.to_dict())

    dataset = dict(card.dataset or {})
    release = dataset.get("release")
    info = release_info(release)
    pretraining = card.extra.get("pretraining") if isinstance(card.extra.get("pretraining"), dict) else None
    keys = citation_keys(
        release, task=card.task, lora=bool(card.lora), pretraining=(pretraining or {}).get("method")
    )
    headline = [(name, metrics[key]) for key, (_, name, _) in _METRICS.items() if key in metrics]
    tree = card.extra.get("tree") if isinstance(card.extra.get("tree"), dict) else None
    tree_keys = {
        f"{q['name']}_{m}"
        for q in (tree or {}).get("questions", [])
        for m in ("answered", "rmse", "mae", "calibration", "accuracy", "confident")
    }
    other = {
        k: v
        for k, v in metrics.items()
        if k not in _METRICS
        and k not in tree_keys
        and not k.startswith(("precision_", "recall_"))
        and k != "loss"
    }
    catalog = dataset.get("catalog")
    lora = dict(card.lora) if card.lora else None
    if lora and lora.get("trainable_params") and lora.get("all_params"):
        lora["trainable_fraction"] = f"{100 * lora['trainable_params'] / lora['all_params']:.2f}%"
    context = {
        "metadata_yaml": metadata.to_yaml(),
        "model_name": model_name,
        "repo_id": repo_id,
        "card": card,
        "task": card.task,
        "base_model": hub_base_model(card) or display_name(card.base_model),
        "base_model_is_hub": hub_base_model(card) is not None,
        "model_config": display_name(card.model_config),
        "release": release or "unknown",
        "release_name": info[0] if info else (release or "an unspecified Galaxy Zoo release"),
        "survey": info[1] if info else "images from the survey of the training set (not recorded)",
        "synthetic": bool(dataset.get("synthetic") or card.extra.get("synthetic")),
        "catalog": basename(str(catalog)) if catalog else None,
        "dataset_id": dataset.get("dataset_id"),
        "label_scheme": dataset.get("label_scheme"),
        "threshold": dataset.get("threshold"),
        "question": dataset.get("question"),
        "n_dropped": dataset.get("n_dropped"),
        "split_table": markdown_table(
            [{"split": s, "galaxies": n} for s, n in (dataset.get("split_sizes") or {}).items()]
        ),
        "balance_table": _balance_table(
            # a whole-tree dataset's classes are its first question's answers (the split's strata)
            list(dataset.get("class_names") or []) if tree else card.label_names,
            dataset.get("class_balance") or {},
        ),
        "label_names": card.label_names,
        "label_table": markdown_table(_label_rows(card, metrics)),
        "has_chirality": any("clockwise" in n for n in card.label_names),
        "tree": tree,
        "tree_table": markdown_table(_tree_rows(tree, metrics)),
        "example_column": f"{card.label_names[0]}_fraction" if card.label_names else "",
        "hyperparameter_table": markdown_table(
            [
                {"hyperparameter": f"`{k}`", "value": v}
                for k, v in sorted(strip_local_paths(card.hyperparameters).items())
            ]
        ),
        "lora": lora,
        "pretraining": pretraining,
        "pooled_features": _pooled_features(output_dir),
        "pretraining_sources": markdown_table(
            [
                {"source": f"`{display_name(str(k))}`", "images": v}
                for k, v in ((pretraining or {}).get("images_per_source") or {}).items()
            ]
        ),
        "lora_table": markdown_table([{"setting": f"`{k}`", "value": v} for k, v in lora.items()])
        if lora
        else [],
        "precision": card.precision,
        "hardware": card.hardware or "not recorded",
        "soft_labels": card.soft_labels,
        "log_table": markdown_table(
            [
                {k: v for k, v in row.items() if not k.startswith(("precision_", "recall_"))}
                for row in _log_table(card, output_dir)
            ]
        ),
        "metrics_table": markdown_table([{"metric": n, "value": v} for n, v in headline]),
        "other_metrics_table": markdown_table(
            [{"metric": f"`{k}`", "value": v} for k, v in sorted(other.items())]
        ),
        "eval_split": card.eval_split,
        "plots": [(name, caption) for name, caption in PLOTS.items() if (output_dir / name).is_file()],
        "citations": [CITATIONS[k] for k in keys],
        "library_versions": card.library_versions,
        "library_table": markdown_table(
            [{"library": k, "version": v} for k, v in card.library_versions.items()]
        ),
    }
    template = {
        ("image-classification", False): "tree.jinja" if tree else "classification.jinja",
        ("object-detection", False): "detection.jinja",
        ("image-feature-extraction", False): "feature_extraction.jinja",
    }.get((card.task, adapter), "lora_adapter.jinja")
    text = render_template(template, context)
    if validate:
        check_card_text(text)
    return text


def _pooled_features(output_dir: Path) -> bool:
    """Whether an encoder's features are its ``pooler_output`` (a CNN's global average pool) rather than the
    mean of a transformer's patch tokens, read from its ``config.json``."""
    config = _read_json(output_dir / "config.json") if (output_dir / "config.json").is_file() else None
    return isinstance(config, dict) and "hidden_sizes" in config  # ResNet, ConvNeXt...: feature maps


def render_template(name: str, context: dict[str, Any]) -> str:
    """Render the card template ``name`` from ``hf_galaxy.model_cards`` (strict: unknown variables fail)."""
    text = _environment().get_template(name).render(**context)
    return re.sub(r"\n{3,}", "\n\n", text)


def check_card_text(text: str, *, library_required: bool = True) -> ModelCard:
    """Parse a rendered card strictly with ``huggingface_hub.ModelCard`` and validate its metadata.

    Raises:
        CardValidationError: the metadata is invalid (the error names the offending key).
        ValueError: the YAML header does not parse.
    """
    parsed = ModelCard(text, ignore_metadata_errors=False)
    validate_card_metadata(parsed.data.to_dict(), library_required=library_required)
    return parsed


def _balance_table(class_names: list[str], balance: dict[str, dict[str, int]]) -> list[str]:
    if not balance:
        return []
    names = list(class_names) or sorted({c for counts in balance.values() for c in counts})
    rows = [
        {"class": f"`{name}`", **{s: counts.get(name, 0) for s, counts in balance.items()}} for name in names
    ]
    return markdown_table(rows, ["class", *balance])


def write_model_card(
    output_dir: str | os.PathLike,
    *,
    card_data: GalaxyCardData | None = None,
    repo_id: str | None = None,
    license: str | None = None,
) -> Path:
    """Render the card of ``output_dir`` and write it to ``output_dir/README.md``; return that path."""
    output_dir = Path(output_dir)
    text = render_model_card(output_dir, card_data=card_data, repo_id=repo_id, license=license)
    path = output_dir / README_NAME
    path.write_text(text, encoding="utf-8")
    return path
