"""Publishing prepared datasets: a ``DatasetDict`` from :func:`~hf_galaxy.load_galaxy_dataset` (or saved with
``save_to_disk``) goes to a Hub dataset repo as parquet files with the images inside, and a generated dataset card:
the release and its citation, label scheme, threshold and question, class balance per split, the rows left out
and why, and the license. The push is the models' (:func:`~hf_galaxy.hub.publish.push_plan`): one commit, a dry
run writes the exact folder instead, and ``load_dataset(repo_id)`` reads it back.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

from hf_galaxy.data.hub import CARD_FACTS_KEY
from hf_galaxy.hub.card import jsonable
from hf_galaxy.hub.publish import PublishResult, UploadPlan, check_repo_id, check_revision, push_plan
from hf_galaxy.hub.render import README_NAME, _balance_table, markdown_table, render_template
from hf_galaxy.hub.validate import HUB_LICENSES

DEFAULT_DATASET_LICENSE = "cc-by-4.0"
#: the dataset facts a published card records (under ``hf_galaxy``) for :func:`~hf_galaxy.load_galaxy_dataset`
_CARD_FACTS = (
    "release", "label_scheme", "threshold", "question", "class_names", "image_size", "seed", "tree", "synthetic",
    "dataset_id", "config", "revision", "n_dropped", "dropped_by_reason",
)  # fmt: skip
DATASET_PATTERNS = ("*.parquet", README_NAME)


def _size_category(n: int) -> str:
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < limit:
            return name
    return "1M<n<10M"


def dataset_card_text(dsd: Any, repo_id: str, *, license: str = DEFAULT_DATASET_LICENSE) -> str:
    """The README.md of a prepared dataset's repo (YAML metadata that the Hub reads, then the card)."""
    from hf_galaxy.data.dataset import describe
    from hf_galaxy.hub.references import CITATIONS, citation_keys, release_info

    if license not in HUB_LICENSES:
        raise ValueError(f"license={license!r} is not a Hub license identifier (e.g. 'cc-by-4.0')")
    facts = describe(dsd)
    release = facts.get("release")
    info = release_info("synthetic" if facts.get("synthetic") else release) or release_info(release)
    sizes = {s: len(ds) for s, ds in dsd.items()}
    data = DatasetCardData(
        license=license,
        pretty_name=f"{info[0] if info else release or 'Galaxy Zoo'} ({facts.get('label_scheme', 'labels')})",
        task_categories=["image-classification"],
        tags=["galaxy-zoo", "astronomy", "hf-galaxy"],
        size_categories=[_size_category(sum(sizes.values()))],
        configs=[
            {"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*"} for s in sizes]}
        ],
        # what load_galaxy_dataset(repo_id) restores: the tree of a whole-tree set, the label scheme, the source
        **{CARD_FACTS_KEY: jsonable({k: v for k, v in facts.items() if k in _CARD_FACTS})},
    )
    keys = [k for k in citation_keys(release, task="image-classification", lora=False) if k in CITATIONS]
    keys = [k for k in keys if k not in ("dosovitskiy2021",)]  # the data's papers, not a model's
    label_lines = [f"Label scheme: `{facts.get('label_scheme')}`"]
    if facts.get("question"):
        label_lines.append(f"Question: `{facts['question']}`")
    if facts.get("threshold") is not None and facts.get("label_scheme") == "clean":
        label_lines.append(f"Kept only galaxies whose winning vote fraction is at least {facts['threshold']}")
    if facts.get("tree"):
        tree = facts["tree"]
        label_lines.append(
            f"Decision tree `{tree.get('name')}`: {len(tree.get('questions', []))} questions; `counts` holds the "
            "vote count of every answer"
        )
    context = {
        "metadata_yaml": data.to_yaml(),
        "pretty_name": data.pretty_name,
        "repo_id": repo_id,
        "release_name": info[0] if info else (release or "an unspecified Galaxy Zoo release"),
        "survey": info[1] if info else "not recorded",
        "synthetic": bool(facts.get("synthetic")),
        "tree": bool(facts.get("tree")),
        "label_lines": label_lines,
        "label_table": markdown_table(
            [{"id": i, "class": f"`{n}`"} for i, n in enumerate(facts.get("class_names") or [])]
        ),
        "split_table": markdown_table([{"split": s, "galaxies": n} for s, n in sizes.items()]),
        "balance_table": _balance_table(
            list(facts.get("class_names") or []), facts.get("class_balance") or {}
        ),
        "catalog": Path(str(facts["catalog"])).name
        if facts.get("catalog") and not facts.get("dataset_id")
        else None,
        "source_dataset": facts.get("dataset_id"),
        "source_config": facts.get("config"),
        "source_revision": facts.get("revision"),
        "seed": facts.get("seed"),
        "image_size": facts.get("image_size"),
        "n_dropped": facts.get("n_dropped", 0),
        "dropped_table": markdown_table(
            [{"reason": r, "rows": n} for r, n in (facts.get("dropped_by_reason") or {}).items()]
        ),
        "license": license,
        "citations": [CITATIONS[k] for k in keys],
    }
    text = render_template("dataset.jinja", context)
    DatasetCard(text, ignore_metadata_errors=False)  # the header must parse as the Hub parses it
    return text


def plan_dataset_upload(
    dsd: Any,
    repo_id: str,
    staging: Path,
    *,
    license: str = DEFAULT_DATASET_LICENSE,
    source: Path | None = None,
) -> UploadPlan:
    """Stage ``data/<split>-00000-of-00001.parquet`` (images embedded) and the card for :func:`push_plan`."""
    files: dict[str, Path] = {}
    for split, ds in dsd.items():
        path = staging / "data" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(path))
        files[path.relative_to(staging).as_posix()] = path
    card = staging / README_NAME
    card.write_text(dataset_card_text(dsd, repo_id, license=license), encoding="utf-8")
    files[README_NAME] = card
    return UploadPlan(
        files=dict(sorted(files.items())),
        staging=staging,
        source=source or staging,
        render_card=lambda rid: dataset_card_text(dsd, rid, license=license),
        default_commit_message="Publish dataset with hf-galaxy",
        dry_run_option="--dry_run DIR",
        repo_type="dataset",
        managed_patterns=DATASET_PATTERNS,
    )


def publish_dataset(
    dataset: Any,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run_dir: str | os.PathLike | None = None,
    license: str = DEFAULT_DATASET_LICENSE,
    token: str | None = None,
    endpoint: str | None = None,
) -> PublishResult:
    """Publish a prepared dataset (a ``DatasetDict`` or a folder saved with ``save_to_disk``) to a Hub dataset
    repo in one commit, with its generated card; ``dry_run_dir`` writes the exact folder instead.

    Raises:
        ValueError: invalid ``repo_id``, ``revision`` or ``license``, or an unusable ``dry_run_dir``.
        PublishError: offline mode, no token for the real Hub, or the Hub rejected the upload.
    """
    from datasets import DatasetDict

    check_repo_id(repo_id)
    check_revision(revision)
    source = None
    if isinstance(dataset, (str, os.PathLike)):
        source = Path(dataset)
        if not (source / "dataset_dict.json").is_file():
            raise FileNotFoundError(
                f"{source}: not a DatasetDict saved with save_to_disk (no dataset_dict.json)"
            )
        dataset = DatasetDict.load_from_disk(str(source))
    with tempfile.TemporaryDirectory(prefix="hf_galaxy_publish_dataset_") as tmp:
        plan = plan_dataset_upload(dataset, repo_id, Path(tmp), license=license, source=source)
        return push_plan(
            plan, repo_id, private=private, revision=revision, commit_message=commit_message,
            dry_run_dir=dry_run_dir, token=token, endpoint=endpoint,
        )  # fmt: skip
