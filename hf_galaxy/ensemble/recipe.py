"""The ensemble recipe (``recipes/ensemble.py``, ``hf-galaxy ensemble``): members (given, or trained) -> fit
on validation -> evaluate on the test split -> save (config, results, card) -> publish when asked."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_galaxy.ensemble.core import (
    ENSEMBLE_CONFIG_NAME,
    METHODS,
    GalaxyEnsemble,
    format_table,
    publish_ensemble,
)
from hf_galaxy.ensemble.members import (
    MemberSpec,
    is_inside,
    load_member,
    local_member_dir,
    relative_or_absolute,
)
from hf_galaxy.ensemble.strategies import STRATEGIES, train_members

logger = logging.getLogger(__name__)


@dataclass
class EnsembleArguments:
    """What the ensemble recipe / ``hf-galaxy ensemble`` combines and how."""

    members: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated member checkpoints (directories or Hub ids, 'id@revision' pins a revision). "
            "When absent, --n_members members are trained with --strategy."
        },
    )
    ensemble: str | None = field(
        default=None, metadata={"help": "A saved ensemble (folder or Hub id) to evaluate instead."}
    )
    method: str = field(default="soft", metadata={"help": "soft, hard, weighted or stacking."})
    strategy: str = field(
        default="seeds", metadata={"help": "How to train members: seeds, bagging or boosting."}
    )
    n_members: int = field(default=3, metadata={"help": "Members to train (without --members)."})
    n_folds: int = field(default=5, metadata={"help": "Cross-fitting folds of stacking."})
    boosting_learning_rate: float = field(default=1.0, metadata={"help": "Shrinkage of the boosting alphas."})
    publish_repo_id: str | None = field(
        default=None, metadata={"help": "Publish the ensemble to this Hub repo."}
    )
    publish_dry_run: str | None = field(
        default=None, metadata={"help": "Write the folder that publishing would push here (pushes nothing)."}
    )
    publish_private: bool = field(
        default=False,
        metadata={"help": "Create the ensemble repo as private (refused for an existing public repo)."},
    )
    publish_revision: str | None = field(
        default=None,
        metadata={"help": "Branch to publish the ensemble to (created when missing); default main."},
    )
    license: str = field(default="mit", metadata={"help": "Hub license id for the ensemble card."})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"--method must be one of {METHODS}, got {self.method!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.n_members < 1:
            raise ValueError(f"--n_members must be >= 1, got {self.n_members}")
        if self.publish_repo_id is not None or self.publish_revision is not None:
            from hf_galaxy.hub.publish import check_repo_id, check_revision

            if self.publish_repo_id is not None:
                check_repo_id(self.publish_repo_id)
            check_revision(self.publish_revision)

    def member_specs(self) -> list[MemberSpec]:
        """``--members`` parsed into specs (``id@revision`` sets the revision of a Hub id)."""
        specs = []
        for item in (self.members or "").split(","):
            item = item.strip()
            if not item:
                continue
            name, _, rev = item.partition("@") if "@" in item and not Path(item).exists() else (item, "", "")
            specs.append(MemberSpec(name, revision=rev or None))
        return specs


def run_ensemble(
    script_args: Any,
    training_args: Any,
    model_args: Any,
    data_args: Any,
    ensemble_args: EnsembleArguments,
    *,
    dataset_dict: Any = None,
) -> dict[str, Any]:
    """The ensemble recipe: members (given, or trained) -> fit on validation -> evaluate on the test split ->
    print the member/ensemble table -> save ``output_dir`` (config, results, card) -> publish when asked.

    Returns ``{"rows": [...], "split": ..., "ensemble_dir": ..., "validation": fit info}``.
    """
    from hf_galaxy.data.dataset import dataset_facts
    from hf_galaxy.hub.card import jsonable
    from hf_galaxy.training import load_training_data, parse_rotations

    output_dir = Path(training_args.output_dir)
    if dataset_dict is None:
        dataset_dict = load_training_data(
            script_args.dataset,
            data_args,
            output_dir=output_dir,
            data_dir=script_args.data_dir,
            seed=training_args.seed,
        )
    split = script_args.eval_split if script_args.eval_split in dataset_dict else "validation"
    if split not in dataset_dict:
        raise ValueError(f"the dataset has neither a {script_args.eval_split!r} nor a 'validation' split")
    boosted = ensemble_args.strategy == "boosting" and not ensemble_args.member_specs()  # alphas, no fit
    fitted_here = (
        not ensemble_args.ensemble and not boosted and ensemble_args.method in ("weighted", "stacking")
    )
    if split == "validation" and fitted_here:
        raise ValueError(
            f"--method {ensemble_args.method} is fitted on the 'validation' split, and the dataset has no "
            f"{script_args.eval_split!r} split to evaluate it on: scoring it on the rows it was fitted on would be "
            "optimistic. Give a dataset with a test split, or use --method soft/hard."
        )
    tta = parse_rotations(script_args.tta_rotations) if script_args.tta else None
    device = "cpu" if training_args.use_cpu else None
    predict_kwargs = dict(
        batch_size=training_args.per_device_eval_batch_size,
        num_workers=training_args.dataloader_num_workers,
        device=device,
        # the parser resolves --precision auto to bf16/fp16 on GPUs and fp32 on CPUs
        precision=script_args.precision if script_args.precision in ("bf16", "fp16") else "fp32",
    )
    if ensemble_args.ensemble:
        ens = GalaxyEnsemble.from_pretrained(ensemble_args.ensemble)
        if tta:
            ens.tta_rotations = tta
        if split == "validation" and ens.method in ("weighted", "stacking"):
            logger.warning(
                "the %s ensemble %s was fitted on a validation split and is now evaluated on the 'validation' "
                "split of %s: if that is the split it was fitted on, these figures are optimistic",
                ens.method,
                ensemble_args.ensemble,
                script_args.dataset,
            )
    else:
        specs = ensemble_args.member_specs()
        if specs:
            members = [load_member(s) for s in specs]
            provenance: dict[str, Any] = {"strategy": "given"}
        else:
            members, provenance = train_members(
                dataset_dict,
                output_dir,
                n_members=ensemble_args.n_members,
                strategy=ensemble_args.strategy,
                seed=training_args.seed,
                training_args=training_args,
                model_args=model_args,
                data_args=data_args,
                script_args=script_args,
                boosting_learning_rate=ensemble_args.boosting_learning_rate,
                predict_kwargs=predict_kwargs,
            )
        method, weights = ensemble_args.method, None
        if ensemble_args.strategy == "boosting" and not specs:
            if method not in ("hard", "soft"):
                logger.warning(
                    "boosting members vote with their alphas: method %s replaced by 'hard'", method
                )
                method = "hard"
            weights = provenance["weights"]
        for m in members:  # members trained here are named relative to the ensemble folder
            local = local_member_dir(m.spec.name_or_path, None)
            if local is not None and is_inside(local, output_dir):
                m.spec.name_or_path = relative_or_absolute(local, output_dir)
        ens = GalaxyEnsemble.from_loaded(
            members, method=method, weights=weights, tta_rotations=tta, provenance=provenance
        )
        ens.base_dir = output_dir
        if ens.tree is None and (ens.method in ("weighted", "stacking") or "validation" in dataset_dict):
            if "validation" not in dataset_dict:
                raise ValueError(
                    f"method {ens.method!r} is fitted on a 'validation' split; the dataset has none"
                )
            ens.fit(
                dataset_dict["validation"],
                n_folds=ensemble_args.n_folds,
                seed=training_args.seed,
                **predict_kwargs,
            )
    rows = ens.evaluate(dataset_dict[split], **predict_kwargs)
    results = {
        "split": split,
        "n_samples": len(dataset_dict[split]),
        "tta_rotations": tta,
        "dataset": script_args.dataset,
        "dataset_info": {
            k: jsonable(v)
            for k, v in dataset_facts(dataset_dict).items()
            if k in ("release", "dataset_id", "synthetic") and v is not None
        },
        "rows": rows,
        "validation": ens.fit_info,
    }
    ens.save_pretrained(output_dir, results=results, repo_id=ensemble_args.publish_repo_id)
    if ensemble_args.publish_repo_id or ensemble_args.publish_dry_run:
        result = publish_ensemble(
            output_dir,
            ensemble_args.publish_repo_id or "hf-galaxy/ensemble-dry-run",
            private=ensemble_args.publish_private,
            revision=ensemble_args.publish_revision,
            dry_run_dir=ensemble_args.publish_dry_run,
            license=ensemble_args.license,
        )
        results["published"] = {"files": len(result.files), "to": str(result.dry_run_dir or result.repo_url)}
    return {**results, "ensemble_dir": str(output_dir)}


def summary(results: dict[str, Any]) -> str:
    """What the entry points print after :func:`run_ensemble`: the member/ensemble table and where it went."""
    tta = results.get("tta_rotations")
    lines = [
        f"\nmembers and ensemble on the {results['split']} split ({results['n_samples']} galaxies"
        + (f", TTA {tta}" if tta else "")
        + "):",
        format_table(results["rows"]),
        f"ensemble saved to {Path(results['ensemble_dir']) / ENSEMBLE_CONFIG_NAME}",
    ]
    if results.get("published"):
        lines.append(
            f"published the ensemble ({results['published']['files']} files) to {results['published']['to']}"
        )
    return "\n".join(lines)
