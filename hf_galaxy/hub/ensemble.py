"""The ensemble's model card and its push: rendered from ``model_cards/ensemble.jinja`` with the same card
machinery as a model's card, pushed through :func:`~hf_galaxy.hub.publish.push_plan` like every model.

This module reads the saved ensemble's JSON (``ensemble_config.json``, ``ensemble_results.json``); it never
imports :mod:`hf_galaxy.ensemble`, which calls it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hf_galaxy.hub.render import README_NAME

#: The folder of a saved or published ensemble that holds its local members (``members/<name>``).
MEMBERS_SUBDIR = "members"


def _is_hub_id(name: str) -> bool:
    from hf_galaxy.hub.render import is_hub_repo_id

    return not Path(name).is_absolute() and not name.startswith(MEMBERS_SUBDIR + "/") and is_hub_repo_id(name)


_METHOD_TEXT = {
    "soft": "soft voting: the mean of the members' class probabilities",
    "hard": "hard voting: the majority of the members' predicted classes (vote shares as scores)",
    "weighted": "weighted soft voting: member weights fitted on the validation split (minimum log-loss)",
    "stacking": "stacking: a logistic-regression meta-learner on the members' class probabilities, fitted "
    "on the validation split with cross-fitting",
}


_STRATEGY_TEXT = {
    "seeds": "trained on the same data with different random seeds",
    "bagging": "each trained on a bootstrap resample of the training split (bagging)",
    "boosting": "trained in sequence on resamples weighted towards the previous members' errors "
    "(SAMME boosting); they vote with the weights alpha below",
}


ENSEMBLE_TEMPLATE = "ensemble.jinja"


def render_ensemble_card(
    config: dict[str, Any],
    results: dict[str, Any] | None = None,
    *,
    repo_id: str | None = None,
    license: str = "mit",
) -> str:
    """The ensemble's model card (README.md): members, method, weights, member/ensemble metrics, usage.

    Rendered from ``model_cards/ensemble.jinja`` through the card machinery of :mod:`hf_galaxy.hub.render`:
    the YAML header (license, pipeline tag, tags, the Hub members as ``base_model``, the dataset and the
    ensemble row's metrics as ``model-index``, named after the Galaxy Zoo release as in a model card) is
    built with ``huggingface_hub.ModelCardData``, parsed back strictly and validated with
    :func:`hf_galaxy.hub.validate_card_metadata` (without ``library_name``: no single library loads an ensemble).

    Raises:
        CardValidationError: the metadata is invalid (e.g. an unknown license); the error names the key.
    """
    from huggingface_hub import ModelCardData

    from hf_galaxy.hub.render import (
        check_card_text,
        dataset_name_and_type,
        eval_results,
        markdown_table,
        render_template,
    )
    from hf_galaxy.hub.validate import HUB_LICENSES, REQUIRED_TAGS, CardValidationError

    if license not in HUB_LICENSES:
        raise CardValidationError("license", f"{license!r} is not a Hub license identifier (e.g. 'mit')")
    method = config["method"]
    members = [{"name_or_path": m} if isinstance(m, str) else m for m in config["members"]]
    bad = [m for m in members if not isinstance(m, dict) or not m.get("name_or_path")]
    if bad:
        raise ValueError(
            f"ensemble config: member entries must name their model ('name_or_path'), got {bad[0]!r}"
        )
    weights = config.get("weights")
    prov = config.get("provenance") or {}
    strategy = prov.get("strategy")
    results = results or {}
    rows = results.get("rows") or []
    split = results.get("split", "test")
    dataset_info = results.get("dataset_info") if isinstance(results.get("dataset_info"), dict) else {}
    dataset_name, dataset_type = dataset_name_and_type(dataset_info)
    dataset_id = dataset_info.get("dataset_id")
    ens_row = rows[-1] if rows else {}
    index = eval_results(
        ens_row,
        task="image-classification",
        split=split,
        dataset_name=dataset_name,
        dataset_type=dataset_type,
    )
    model_name = repo_id.split("/")[-1] if repo_id else "galaxy-zoo-ensemble"
    hub_members = [m["name_or_path"] for m in members if _is_hub_id(m["name_or_path"])]
    metadata = ModelCardData(
        license=license,
        pipeline_tag="image-classification",
        tags=[*REQUIRED_TAGS, "image-classification", "vision", "ensemble", "hf-galaxy"],
        base_model=hub_members or None,
        datasets=[dataset_id] if dataset_id else None,
        metrics=sorted({r.metric_type for r in index}) or None,
        # huggingface_hub folds model_name into model-index; without results it would stay a stray key
        model_name=model_name if index else None,
        eval_results=index or None,
    )
    member_rows = []
    for i, m in enumerate(members):
        where = m["name_or_path"]
        details = ", ".join(f"{k}={v}" for k, v in (m.get("info") or {}).items() if not isinstance(v, dict))
        member_rows.append(
            {
                "#": i,
                "model": f"[`{where}`](https://huggingface.co/{where})"
                if _is_hub_id(where)
                else f"`{where}`",
                "revision": m.get("commit") or m.get("revision"),
                "seed": m.get("seed"),
                "weight": None if weights is None else float(weights[i]),
                "details": details or None,
            }
        )
    cols = list(dict.fromkeys(k for r in rows for k in r if k != "model"))  # the metrics, in table order
    fit = prov.get("fit") or {}
    cv = fit.get("cross_fitted_validation") if method == "stacking" else None
    context = {
        "metadata_yaml": metadata.to_yaml(),
        "model_name": model_name,
        "repo_id": repo_id or "<namespace>/<ensemble-name>",
        "n_members": len(members),
        "method": method,
        "method_text": _METHOD_TEXT[method],
        "strategy_text": _STRATEGY_TEXT.get(strategy),
        "member_table": markdown_table(member_rows, ["#", "model", "revision", "seed", "weight", "details"]),
        "results_table": markdown_table(
            [{"model": r.get("model"), **{c: r.get(c) for c in cols}} for r in rows], ["model", *cols]
        ),
        "split": split,
        "n_samples": results.get("n_samples"),
        "dataset_name": dataset_name,
        "tta_rotations": results.get("tta_rotations"),
        "fitted": method in ("weighted", "stacking"),
        "fit_split_size": fit.get("fit_split_size"),
        "n_folds": fit.get("n_folds"),
        "fold_seed": fit.get("fold_seed"),
        "stacking_cv": markdown_table([{"metric": k, "value": v} for k, v in cv.items()]) if cv else [],
        "label_names": list(config.get("label_names") or []),
    }
    text = render_template(ENSEMBLE_TEMPLATE, context)
    check_card_text(text, library_required=False)
    return text


def published_results(results: dict[str, Any], member_names: Sequence[str]) -> dict[str, Any]:
    """``ensemble_results.json`` as published: the member rows named as in the published config, and every
    local path (the dataset argument, ...) reduced to its base name."""
    from hf_galaxy.hub.sanitize import strip_local_paths

    results = copy.deepcopy(results)
    rows = results.get("rows")
    if isinstance(rows, list) and len(rows) == len(member_names) + 2:  # members, their mean, the ensemble
        for row, name in zip(rows, member_names):
            if isinstance(row, dict):
                row["model"] = name
    return strip_local_paths(results)


def push_ensemble_folder(
    staging: Path,
    source: Path,
    repo_id: str,
    config: dict[str, Any],
    results: dict[str, Any] | None,
    *,
    license: str = "mit",
    **push_options: Any,
) -> Any:
    """Render the card into ``staging`` (the folder of a saved ensemble made ready to upload) and push every
    file of it in one commit through :func:`~hf_galaxy.hub.publish.push_plan` (``push_options``: private,
    revision, commit_message, dry_run_dir, token, endpoint). Returns its :class:`PublishResult`."""
    from hf_galaxy.hub.publish import UploadPlan, push_plan

    def render_card(target: str) -> str:
        return render_ensemble_card(config, results, repo_id=target, license=license)

    (staging / README_NAME).write_text(render_card(repo_id), encoding="utf-8")
    files = {p.relative_to(staging).as_posix(): p for p in sorted(staging.rglob("*")) if p.is_file()}
    plan = UploadPlan(
        files=files,
        staging=staging,
        source=source,
        render_card=render_card,
        default_commit_message="Publish ensemble with hf-galaxy",
        dry_run_option="--publish_dry_run DIR",
    )
    return push_plan(plan, repo_id, **push_options)
