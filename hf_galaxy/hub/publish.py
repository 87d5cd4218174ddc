"""Publish a training output directory to the Hugging Face Hub, with its generated model card.

:func:`publish` gathers exactly the files that belong on the Hub (weights as safetensors, config, image
processor, card, metrics, plots), renders the card for the target repo, validates it, and pushes everything
in one commit. It never uploads tokens, optimizer/scheduler states, ``training_args.bin`` or ``checkpoint-*``
folders, and writes nothing into the output directory. Local paths recorded in the published JSON files (card
data, metrics, configs) are reduced to base names (:mod:`hf_galaxy.hub.sanitize`). ``dry_run_dir`` writes the
exact folder that would be pushed instead. :func:`push_plan` is the one push path: ensembles
(:func:`hf_galaxy.ensemble.publish_ensemble`) go through it too.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    constants,
    get_token,
    snapshot_download,
)
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import HFValidationError, validate_repo_id

from hf_galaxy.hub.card import CARD_DATA_FILENAME, GalaxyCardData
from hf_galaxy.hub.render import BASE_MODEL_LOCAL_KEY, README_NAME, is_hub_repo_id, render_model_card
from hf_galaxy.hub.sanitize import clean_json_files, strip_local_paths
from hf_galaxy.jsonio import read_json

logger = logging.getLogger(__name__)

ADAPTER_SUBDIR = "adapter"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
#: Image-processor / processor files published next to the weights when present.
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
#: Metrics files published when present.
METRIC_FILES = ("all_results.json", "eval_results.json", "train_results.json", "test_results.json")
#: Never published, whatever else happens (checked on the final upload set).
FORBIDDEN_PATTERNS = (
    "checkpoint-*",
    "*/checkpoint-*",
    "optimizer.*",
    "scheduler.*",
    "rng_state*",
    "scaler.pt",
    "training_args.bin",
    "*token*",
    ".env",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.pkl",
)
#: Remote files a new publish replaces or removes (anything else in the repo, e.g. a hand-written LICENSE, stays).
MANAGED_PATTERNS = ("*.safetensors", "*.json", "*.png", README_NAME)
DEFAULT_COMMIT_MESSAGE = "Publish model with hf-galaxy"


class PublishError(RuntimeError):
    """Publishing failed: the message says why and what to do. The local output directory is untouched."""


@dataclass
class PublishResult:
    """What :func:`publish` did."""

    repo_id: str
    revision: str
    files: list[str]
    adapter: bool
    commit_oid: str | None = None
    commit_url: str | None = None
    repo_url: str | None = None
    dry_run_dir: Path | None = None
    deleted: list[str] = field(default_factory=list)


@dataclass
class UploadPlan:
    """A staged upload set, ready for :func:`push_plan`.

    Attributes:
        files: Path in the repo -> local file (generated files live in ``staging``).
        staging: Temporary folder holding the generated files (the card, cleaned JSON, merged weights).
        source: The local folder being published: named in messages, never written to, and a dry run may
            not write inside it.
        render_card: Renders ``README.md`` for a repo id; called again when the Hub puts the repo in another
            namespace than asked (a repo id without namespace), so that the card's snippets name the real repo.
        adapter: The upload is a LoRA adapter alone.
        card: The card data of a model upload (``None`` for an ensemble).
        default_commit_message: Commit title when none is given.
        dry_run_option: The command-line option that asks for a dry run (for the offline-mode message).
    """

    files: dict[str, Path]
    staging: Path
    source: Path
    render_card: Callable[[str], str] | None = None
    adapter: bool = False
    card: GalaxyCardData | None = None
    default_commit_message: str = DEFAULT_COMMIT_MESSAGE
    dry_run_option: str = "--dry_run DIR"
    #: ``"model"`` or ``"dataset"`` (:func:`hf_galaxy.hub.datasets.publish_dataset`)
    repo_type: str = "model"
    #: remote files of these name patterns that the upload no longer has are deleted
    managed_patterns: tuple[str, ...] = MANAGED_PATTERNS


def _is_real_hub(endpoint: str) -> bool:
    host = (urlparse(endpoint).hostname or "").lower()
    return host == "huggingface.co" or host.endswith(".huggingface.co")


def check_repo_id(repo_id: str) -> None:
    """Raise ``ValueError`` when ``repo_id`` is not a valid Hub repo id (no network call)."""
    if not isinstance(repo_id, str) or not repo_id:
        raise ValueError(f"repo_id must be a non-empty string like 'namespace/model-name', got {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"invalid repo_id {repo_id!r}: expected 'namespace/model-name'. {err}") from err


def check_revision(revision: str | None) -> None:
    """Raise ``ValueError`` when ``revision`` is not a usable branch name (no network call)."""
    if revision is None:
        return
    bad = [c for c in (" ", "~", "^", ":", "?", "*", "[", "\\", "..") if c in revision]
    if not revision or revision.startswith(("/", "-", "refs/")) or revision.endswith(("/", ".lock")) or bad:
        raise ValueError(f"invalid revision {revision!r}: expected a branch name such as 'main' or 'v1'")


def _is_forbidden(path_in_repo: str) -> bool:
    parts = PurePosixPath(path_in_repo).parts
    if any(p.startswith("checkpoint-") for p in parts):
        return True
    name = parts[-1]
    return any(fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(path_in_repo, pat) for pat in FORBIDDEN_PATTERNS)


def _label_names_from_config(config_path: Path) -> list[str]:
    """Class names in id order from ``config.json``; ``ValueError`` when the label maps are missing or default."""
    config = read_json(config_path)
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise ValueError(
            f"{config_path} has no id2label: the model has no label maps. Train with an hf-galaxy recipe "
            "(labels come from the dataset's ClassLabel names)."
        )
    try:
        ids = sorted(int(k) for k in id2label)
    except ValueError as err:
        raise ValueError(f"{config_path}: id2label keys must be integers, got {sorted(id2label)}") from err
    if ids != list(range(len(ids))):
        raise ValueError(f"{config_path}: id2label ids must be 0..{len(ids) - 1}, got {ids}")
    names = [str(id2label[str(i)] if str(i) in id2label else id2label[i]) for i in ids]
    if all(name == f"LABEL_{i}" for i, name in enumerate(names)):
        raise ValueError(
            f"{config_path} only has the default label names LABEL_0..LABEL_{len(names) - 1}: the model has no "
            "label maps. Set id2label/label2id from the dataset's class names before training."
        )
    label2id = config.get("label2id")
    if (
        isinstance(label2id, dict)
        and label2id
        and {str(k): int(v) for k, v in label2id.items()} != {n: i for i, n in enumerate(names)}
    ):
        raise ValueError(f"{config_path}: label2id does not match id2label")
    return names


def _model_weights(output_dir: Path) -> list[str]:
    """Names of the safetensors weight files of the top-level model (``[]`` when there is no model)."""
    if (output_dir / WEIGHTS_NAME).is_file():
        return [WEIGHTS_NAME]
    index = output_dir / WEIGHTS_INDEX_NAME
    if index.is_file():
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        missing = [s for s in shards if not (output_dir / s).is_file()]
        if not shards or missing:
            raise ValueError(f"{index} lists weight shards that are missing: {missing or 'none listed'}")
        return [WEIGHTS_INDEX_NAME, *shards]
    return []


def _load_card(output_dir: Path, label_names: list[str], task: str | None) -> GalaxyCardData:
    if (output_dir / CARD_DATA_FILENAME).is_file():
        card = GalaxyCardData.load(output_dir)
    else:
        logger.warning(
            "%s has no %s; the card will only hold what config.json and the metrics files say",
            output_dir,
            CARD_DATA_FILENAME,
        )
        card = GalaxyCardData(task=task or "image-classification")
    if not card.label_names:
        card.label_names = list(label_names)
    elif label_names and list(card.label_names) != list(label_names):
        raise ValueError(
            f"{output_dir}: the card data lists classes {card.label_names} but the model's id2label has "
            f"{label_names}; retrain or fix {CARD_DATA_FILENAME}"
        )
    return card


def _task_from_config(config_path: Path) -> str | None:
    archs = read_json(config_path).get("architectures") or []
    if any("ObjectDetection" in a for a in archs):
        return "object-detection"
    if any("ImageClassification" in a for a in archs):
        return "image-classification"
    if archs and all(a.endswith("Model") for a in archs):  # a bare encoder (ViTModel): features
        return "image-feature-extraction"
    return None


def _merge_adapter(output_dir: Path, adapter_dir: Path, card: GalaxyCardData, into: Path) -> None:
    """Merge the LoRA adapter in ``adapter_dir`` into its base model and save the result in ``into``."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForImageClassification, AutoModelForObjectDetection

    if not card.base_model and card.model_config:
        raise ValueError(
            f"{output_dir} has no merged model and its base was built from a config ({card.model_config}) with "
            "random weights, so the adapter cannot be merged again; retrain with the merged model saved "
            "(the default; --save_merged true)"
        )
    peft_config = PeftConfig.from_pretrained(str(adapter_dir))
    base_id = peft_config.base_model_name_or_path or card.base_model
    if not base_id:
        raise ValueError(
            f"{adapter_dir}/{ADAPTER_CONFIG_NAME} records no base model, so the adapter cannot be merged; "
            "publish it with push_adapter=True after setting base_model_name_or_path"
        )
    if not card.label_names:
        raise ValueError(
            f"{output_dir}: no label names in {CARD_DATA_FILENAME}; cannot rebuild the model head"
        )
    labels = list(card.label_names)
    auto = AutoModelForObjectDetection if card.task == "object-detection" else AutoModelForImageClassification
    logger.info("merging the LoRA adapter %s into %s", adapter_dir, base_id)
    try:
        base = auto.from_pretrained(
            base_id,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={n: i for i, n in enumerate(labels)},
            ignore_mismatched_sizes=True,
        )
    except OSError as err:
        raise ValueError(
            f"cannot load the base model {base_id!r} of the adapter in {adapter_dir} to merge it: {err}"
        ) from err
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(into))


def _optional_files(output_dir: Path, files: dict[str, Path]) -> None:
    for name in (*METRIC_FILES, CARD_DATA_FILENAME):
        if (output_dir / name).is_file():
            files[name] = output_dir / name
    for png in sorted(output_dir.glob("*.png")):
        files[png.name] = png


def public_card_dict(card: GalaxyCardData) -> dict[str, Any]:
    """The card data as published: every local path (catalogue, dataset source, local base model, ...) reduced
    to its base name. A local base model is also marked (``extra["base_model_is_local"]``) so that its base name
    is never mistaken for a Hub repo id when the published card data is rendered again."""
    data = card.to_dict()
    if card.base_model and not is_hub_repo_id(card.base_model):
        data["extra"] = {**(data.get("extra") or {}), BASE_MODEL_LOCAL_KEY: True}
    return strip_local_paths(data)


def _processor_files(output_dir: Path, *fallbacks: Path) -> dict[str, Path]:
    for folder in (output_dir, *fallbacks):
        found = {name: folder / name for name in PROCESSOR_FILES if (folder / name).is_file()}
        if found:
            return found
    return {}


def plan_upload(
    output_dir: str | os.PathLike,
    repo_id: str,
    *,
    staging: Path,
    merge_lora: bool = True,
    push_adapter: bool = False,
    license: str | None = None,
) -> UploadPlan:
    """Work out the upload set for ``output_dir``; generated files (card, merged weights) go into ``staging``.

    Every JSON file of the set (card data, metrics, configs) is published with its local paths reduced to
    base names (cleaned copies in ``staging``; ``output_dir`` is never written to).

    Raises:
        FileNotFoundError: ``output_dir`` does not exist.
        ValueError: no trained model, no label maps, no image processor, or an invalid card.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise FileNotFoundError(f"output directory {output_dir} does not exist (train a model first)")
    adapter_dir = output_dir / ADAPTER_SUBDIR
    has_adapter = (adapter_dir / ADAPTER_CONFIG_NAME).is_file()
    if has_adapter and not (adapter_dir / ADAPTER_WEIGHTS_NAME).is_file():
        raise ValueError(
            f"{adapter_dir} has {ADAPTER_CONFIG_NAME} but no {ADAPTER_WEIGHTS_NAME} (safetensors)"
        )
    config_path = output_dir / CONFIG_NAME
    weights = _model_weights(output_dir) if config_path.is_file() else []
    files: dict[str, Path] = {}

    if push_adapter:
        if not has_adapter:
            raise ValueError(
                f"{output_dir} has no LoRA adapter ({ADAPTER_SUBDIR}/{ADAPTER_CONFIG_NAME}); "
                "push_adapter/--adapter-only needs a LoRA run"
            )
        label_names = _label_names_from_config(config_path) if config_path.is_file() else []
        task = _task_from_config(config_path) if config_path.is_file() else None
        card = _load_card(output_dir, label_names, task)
        if not card.label_names:
            raise ValueError(
                f"{output_dir}: no label names (no config.json id2label and none in {CARD_DATA_FILENAME})"
            )
        if not card.base_model and card.model_config:
            raise ValueError(
                f"the model of {output_dir} was built from a config ({card.model_config}) with random weights, so "
                "its LoRA adapter is useless without that exact base; publish the merged model instead "
                "(drop --adapter-only)"
            )
        adapter_config = read_json(adapter_dir / ADAPTER_CONFIG_NAME)
        base = adapter_config.get("base_model_name_or_path")
        if not is_hub_repo_id(base):
            if not is_hub_repo_id(card.base_model):
                raise ValueError(
                    f"the adapter's base model {base!r} is not a Hub repo id, so an adapter-only repo could not be "
                    "used by anyone else; publish the merged model instead (drop --adapter-only)"
                )
            base = card.base_model
            adapter_config["base_model_name_or_path"] = base
            (staging / ADAPTER_CONFIG_NAME).write_text(
                json.dumps(adapter_config, indent=2) + "\n", encoding="utf-8"
            )
            files[ADAPTER_CONFIG_NAME] = staging / ADAPTER_CONFIG_NAME
        else:
            files[ADAPTER_CONFIG_NAME] = adapter_dir / ADAPTER_CONFIG_NAME
        card.base_model = base
        files[ADAPTER_WEIGHTS_NAME] = adapter_dir / ADAPTER_WEIGHTS_NAME
        processor = _processor_files(output_dir, adapter_dir)
    elif weights:
        task = _task_from_config(config_path)
        labels = [] if task == "image-feature-extraction" else _label_names_from_config(config_path)
        card = _load_card(output_dir, labels, task)
        files[CONFIG_NAME] = config_path
        for name in weights:
            files[name] = output_dir / name
        processor = _processor_files(output_dir)
    elif has_adapter and merge_lora:
        label_names = _label_names_from_config(config_path) if config_path.is_file() else []
        card = _load_card(
            output_dir, label_names, _task_from_config(config_path) if config_path.is_file() else None
        )
        merged = staging / "_merged"
        _merge_adapter(output_dir, adapter_dir, card, merged)
        files[CONFIG_NAME] = merged / CONFIG_NAME
        _label_names_from_config(merged / CONFIG_NAME)
        for name in _model_weights(merged):
            files[name] = merged / name
        processor = _processor_files(output_dir, adapter_dir)
    elif has_adapter:
        raise ValueError(
            f"{output_dir} holds only a LoRA adapter and merge_lora is off: publish the adapter alone with "
            "push_adapter=True (--adapter-only), or allow merging"
        )
    elif (output_dir / "pytorch_model.bin").is_file():
        raise ValueError(
            f"{output_dir} only has pytorch_model.bin; the Hub copy must be safetensors. Re-save the model with "
            "model.save_pretrained(output_dir) (transformers writes model.safetensors)"
        )
    else:
        raise ValueError(
            f"{output_dir} has no trained model: expected {CONFIG_NAME} with {WEIGHTS_NAME} (or a sharded "
            f"{WEIGHTS_INDEX_NAME}), or a LoRA adapter in {ADAPTER_SUBDIR}/"
        )
    if not processor:
        raise ValueError(
            f"{output_dir} has no image processor ({' or '.join(PROCESSOR_FILES)}); save it with "
            "image_processor.save_pretrained(output_dir) so that pipeline() can load the model"
        )
    files.update(processor)
    _optional_files(output_dir, files)

    def render_card(target: str) -> str:
        return render_model_card(
            output_dir, card_data=card, repo_id=target, license=license, adapter=push_adapter
        )

    (staging / README_NAME).write_text(render_card(repo_id), encoding="utf-8")
    files[README_NAME] = staging / README_NAME
    # the card data as completed here (labels from config.json, the adapter's base model), without local paths
    (staging / CARD_DATA_FILENAME).write_text(
        json.dumps(public_card_dict(card), indent=2) + "\n", encoding="utf-8"
    )
    files[CARD_DATA_FILENAME] = staging / CARD_DATA_FILENAME
    files = clean_json_files(files, staging)

    _check_forbidden(files)  # the whitelist above never selects these; this guards against future edits
    return UploadPlan(
        files=dict(sorted(files.items())),
        staging=staging,
        source=output_dir,
        render_card=render_card,
        adapter=push_adapter,
        card=card,
    )


def _check_forbidden(files: dict[str, Path]) -> None:
    forbidden = sorted(p for p in files if _is_forbidden(p))
    if forbidden:
        raise ValueError(f"refusing to publish files that must never be uploaded: {forbidden}")


def _write_dry_run(plan: UploadPlan, dry_run_dir: Path, output_dir: Path) -> None:
    dry_run_dir = dry_run_dir.resolve()
    out = output_dir.resolve()
    if dry_run_dir == out or out in dry_run_dir.parents:
        raise ValueError(
            f"dry_run_dir {dry_run_dir} is inside the output directory {out}; choose another folder"
        )
    if dry_run_dir.exists() and any(dry_run_dir.iterdir()):
        raise ValueError(f"dry_run_dir {dry_run_dir} is not empty; give a new or empty folder")
    dry_run_dir.mkdir(parents=True, exist_ok=True)
    for path_in_repo, src in plan.files.items():
        dst = dry_run_dir / path_in_repo
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def _resolve_token(token: str | None, endpoint: str) -> str | None:
    token = token or get_token()
    if token is None and _is_real_hub(endpoint):
        raise PublishError(
            f"no Hugging Face token found for {endpoint}. Log in with `hf auth login` (or "
            "`huggingface-cli login`), or set the HF_TOKEN environment variable to a token with write access "
            "(https://huggingface.co/settings/tokens)."
        )
    return token


def publish(
    output_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run_dir: str | os.PathLike | None = None,
    merge_lora: bool = True,
    push_adapter: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    license: str | None = None,
) -> PublishResult:
    """Publish a training output directory to the Hub in one commit, with its generated model card.

    Args:
        output_dir: The training output directory (a recipe's ``output_dir``).
        repo_id: Target repo, ``"namespace/model-name"``. Validated before any network call.
        private: Create the repo as private (ignored when it already exists).
        revision: Branch to publish to (created from ``main`` when missing); default ``main``.
        commit_message: Commit title; default ``"Publish model with hf-galaxy"``.
        dry_run_dir: Write the exact folder that would be pushed here (new or empty) and push nothing.
        merge_lora: For a LoRA run whose output has no merged top-level model, merge the adapter into its base
            model before publishing (the default, so that ``pipeline(..., model=repo_id)`` works without peft).
        push_adapter: Publish the LoRA adapter alone (``library_name: peft``), recording its Hub base model.
        token: Hub token; defaults to the logged-in token / ``HF_TOKEN``.
        endpoint: Hub endpoint; defaults to ``HF_ENDPOINT`` / https://huggingface.co.
        license: Hub license id for the card; defaults to the card data's ``extra["license"]`` or ``"mit"``.

    Returns:
        A :class:`PublishResult` with the repo id, the uploaded paths and the commit id.

    Raises:
        ValueError: invalid ``repo_id``/``revision``, no trained model or label maps, invalid card metadata
            (``CardValidationError`` names the key), or an unusable ``dry_run_dir``.
        FileNotFoundError: ``output_dir`` does not exist.
        PublishError: no token for the real Hub, offline mode, or the Hub rejected or dropped the upload.
    """
    check_repo_id(repo_id)
    check_revision(revision)
    output_dir = Path(output_dir)
    with tempfile.TemporaryDirectory(prefix="hf_galaxy_publish_") as tmp:
        plan = plan_upload(
            output_dir,
            repo_id,
            staging=Path(tmp),
            merge_lora=merge_lora,
            push_adapter=push_adapter,
            license=license,
        )
        return push_plan(
            plan,
            repo_id,
            private=private,
            revision=revision,
            commit_message=commit_message,
            dry_run_dir=dry_run_dir,
            token=token,
            endpoint=endpoint,
        )


def push_plan(
    plan: UploadPlan,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> PublishResult:
    """Push a staged upload set in one commit (or write it to ``dry_run_dir``): the one push path of hf-galaxy.

    Used by :func:`publish` (models) and :func:`hf_galaxy.ensemble.publish_ensemble` (ensembles). It validates
    ``repo_id`` and ``revision`` before any network call; refuses forbidden files (checkpoints, optimizer states,
    tokens); writes a dry run only into a new or empty folder outside the published folder; refuses to push in
    offline mode or without a token for the real Hub (saying how to log in); creates the repo (``exist_ok``) and
    refuses ``private=True`` for an existing public repo; creates the branch ``revision``; deletes stale managed
    files (weights, JSON, plots, card) that the new upload no longer has; and turns a rejected or dropped upload
    into a :class:`PublishError` that says the local files are untouched.
    """
    check_repo_id(repo_id)
    check_revision(revision)
    _check_forbidden(plan.files)
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    if dry_run_dir is not None:
        _write_dry_run(plan, Path(dry_run_dir), plan.source)
        logger.info("dry run: wrote %d files to %s", len(plan.files), dry_run_dir)
        return PublishResult(
            repo_id=repo_id,
            revision=revision or constants.DEFAULT_REVISION,
            files=list(plan.files),
            adapter=plan.adapter,
            dry_run_dir=Path(dry_run_dir),
        )
    if constants.is_offline_mode():
        raise PublishError(
            "HF_HUB_OFFLINE is set, so nothing can be pushed. Unset it to publish, or pass dry_run_dir "
            f"({plan.dry_run_option}) to write the folder that would be pushed."
        )
    token = _resolve_token(token, endpoint)
    return _push(plan, repo_id, private, revision, commit_message, token, endpoint)


def _push(
    plan: UploadPlan,
    repo_id: str,
    private: bool,
    revision: str | None,
    commit_message: str | None,
    token: str | None,
    endpoint: str,
) -> PublishResult:
    output_dir = plan.source
    api = HfApi(endpoint=endpoint, token=token)
    kind = plan.repo_type
    target = f"{endpoint}/{'datasets/' if kind == 'dataset' else ''}{repo_id}" + (
        f" (revision {revision})" if revision else ""
    )
    try:
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type=kind)
        if repo_url.repo_id != repo_id:  # a repo id without namespace lands in the user's namespace
            repo_id = repo_url.repo_id
            if plan.render_card is not None and README_NAME in plan.files:
                plan.files[README_NAME].write_text(plan.render_card(repo_id), encoding="utf-8")
        if private and api.repo_info(repo_id, repo_type=kind).private is False:
            raise PublishError(
                f"{endpoint}/{repo_id} already exists and is public, so private=True (--private) cannot be honoured; "
                "nothing was uploaded. Make the repo private on the Hub first, or publish without --private."
            )
        if revision and revision != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type=kind)
        remote = api.list_repo_files(repo_id, revision=revision, repo_type=kind)
        stale = sorted(
            f
            for f in remote
            if f not in plan.files
            and any(fnmatch.fnmatch(PurePosixPath(f).name, p) for p in plan.managed_patterns)
        )
        operations: list[Any] = [CommitOperationDelete(path_in_repo=f) for f in stale]
        operations += [
            CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(src)) for p, src in plan.files.items()
        ]
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message or plan.default_commit_message,
            commit_description=f"Published from `{output_dir.name}` by hf-galaxy.",
            revision=revision,
            repo_type=kind,
        )
    except OfflineModeIsEnabled as err:
        raise PublishError(
            f"cannot publish to {target}: offline mode is enabled (unset HF_HUB_OFFLINE)"
        ) from err
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else "?"
        hint = " Check that your token has write access to this namespace." if status in (401, 403) else ""
        raise PublishError(
            f"the Hub rejected the upload to {target} (HTTP {status}): {err}.{hint} "
            f"The local output {output_dir} is untouched; fix the problem and run publish again."
        ) from err
    except Exception as err:
        if not _is_transport_error(err):
            raise
        raise PublishError(
            f"upload to {target} failed: {type(err).__name__}: {err}. The connection was lost before the Hub "
            f"confirmed the commit, so it may not have been created. The local output {output_dir} is untouched; "
            "run publish again (re-uploading identical files is safe)."
        ) from err
    return PublishResult(
        repo_id=repo_id,
        revision=revision or constants.DEFAULT_REVISION,
        files=list(plan.files),
        adapter=plan.adapter,
        commit_oid=info.oid,
        commit_url=info.commit_url,
        repo_url=str(repo_url),
        deleted=stale,
    )


def _is_transport_error(err: BaseException) -> bool:
    """True for network failures raised by the HTTP client (connection reset, dropped, timed out)."""
    try:
        import httpx2
    except ImportError:  # pragma: no cover - huggingface_hub always ships its HTTP client
        return isinstance(err, ConnectionError)
    return isinstance(err, (httpx2.TransportError, ConnectionError))


def publish_from_training_args(output_dir: str | os.PathLike, args: Any, **kwargs: Any) -> PublishResult:
    """Publish ``output_dir`` to ``args.hub_model_id`` using the Hub settings of ``TrainingArguments``.

    This is the Trainer path (``push_to_hub=True``): recipes call it after training instead of
    ``Trainer.push_to_hub``, so the repo gets the same generated card and file set as ``hf-galaxy publish``.
    """
    repo_id = getattr(args, "hub_model_id", None) or Path(output_dir).resolve().name
    kwargs.setdefault("private", bool(getattr(args, "hub_private_repo", False) or False))
    kwargs.setdefault("revision", getattr(args, "hub_revision", None))
    kwargs.setdefault("token", getattr(args, "hub_token", None))
    return publish(output_dir, repo_id, **kwargs)


def take_over_push(args: Any) -> bool:
    """Turn the Trainer's own ``push_to_hub`` off and return whether the user asked for a push.

    ``Trainer.push_to_hub`` writes its own README and uploads ``training_args.bin`` (and, with
    ``hub_strategy="every_save"``, every checkpoint); recipes publish once at the end instead, through
    :func:`finish_output_dir`, with the generated card.
    """
    asked = bool(getattr(args, "push_to_hub", False))
    if asked:
        args.push_to_hub = False
    return asked


def finish_output_dir(output_dir: str | os.PathLike, args: Any, push_to_hub: bool) -> PublishResult | None:
    """Write the model card (README.md) into a finished run's ``output_dir``; publish it when asked."""
    from hf_galaxy.hub.render import write_model_card

    write_model_card(output_dir, repo_id=getattr(args, "hub_model_id", None))
    if not push_to_hub:
        return None
    result = publish_from_training_args(output_dir, args)
    logger.info("hf-galaxy: published %s to %s (%d files)", output_dir, result.repo_id, len(result.files))
    return result


def pull(
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Download (or find in the local cache, e.g. with ``HF_HUB_OFFLINE=1``) a published repo; return its folder."""
    check_repo_id(repo_id)
    return Path(
        snapshot_download(repo_id, revision=revision, token=token, endpoint=endpoint, cache_dir=cache_dir)
    )
