"""Training ensemble members through the classification recipe: seeds, bagging and SAMME boosting."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from hf_galaxy.data.dataset import recount_facts
from hf_galaxy.ensemble.members import LoadedMember, MemberSpec, load_member, predict_members
from hf_galaxy.hub.ensemble import MEMBERS_SUBDIR

logger = logging.getLogger(__name__)

STRATEGIES = ("seeds", "bagging", "boosting")


def _bootstrap(n: int, seed: int, k: int) -> tuple[np.ndarray, list[int]]:
    """Bootstrap indices of member ``k``, drawn from ``numpy.random.SeedSequence([seed, k])``; returns
    the indices and the seed-sequence entropy that reproduces them."""
    entropy = [int(seed), int(k)]
    return np.random.default_rng(np.random.SeedSequence(entropy)).integers(0, n, size=n), entropy


def train_members(
    dataset_dict: Any,
    output_dir: str | os.PathLike,
    *,
    n_members: int = 3,
    strategy: str = "seeds",
    seed: int = 42,
    training_args: Any = None,
    model_args: Any = None,
    data_args: Any = None,
    script_args: Any = None,
    boosting_learning_rate: float = 1.0,
    predict_kwargs: dict[str, Any] | None = None,
) -> tuple[list[LoadedMember], dict[str, Any]]:
    """Train ``n_members`` members through the training recipe (:func:`hf_galaxy.training.run_training`).

    ``strategy``: ``seeds`` (all of the training split, training seed ``seed + k``), ``bagging`` (member
    ``k`` trains on a bootstrap resample drawn from ``SeedSequence([seed, k])``, training seed ``seed + k``) or
    ``boosting`` (SAMME by resampling: round ``k`` draws its training sample with the current sample
    weights from ``SeedSequence([seed, k, 1])``; weighted training error ``err``, member weight ``alpha = lr * (log((1 - err) / err) +
    log(C - 1))``; misclassified samples' weights are multiplied by ``exp(alpha)``; boosting stops when a
    member is no better than chance). Members go to ``output_dir/members/member-k``; every seed, resample
    size and boosting weight is recorded. Returns the loaded members and the provenance dict
    (``provenance["weights"]`` holds the boosting alphas).
    """
    from transformers import TrainingArguments

    from hf_galaxy.training import (
        DataArguments,
        ModelArguments,
        ScriptArguments,
        class_names_of,
        run_training,
    )

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if n_members < 1:
        raise ValueError(f"n_members must be >= 1, got {n_members}")
    if strategy == "boosting" and "counts" in dataset_dict["train"].column_names:
        raise ValueError(
            "boosting reweights misclassified galaxies: whole-tree members use 'seeds' or 'bagging'"
        )
    output_dir = Path(output_dir)
    script_args = script_args or ScriptArguments()
    model_args = model_args or ModelArguments()
    data_args = data_args or DataArguments()
    if training_args is None or isinstance(training_args, dict):
        training_args = TrainingArguments(
            **{
                "report_to": "none",
                "remove_unused_columns": False,
                **(training_args or {}),
                "output_dir": str(output_dir),
            }
        )
    # members are evaluated by the ensemble, not one by one with TTA
    script_args = dataclasses.replace(script_args, tta=False)
    train = dataset_dict["train"]
    n = len(train)
    class_names = class_names_of(dataset_dict)
    n_classes = len(class_names)
    y = np.asarray(train["label"], dtype=np.int64)
    weights = np.full(n, 1.0 / n)
    members: list[LoadedMember] = []
    alphas: list[float] = []
    rounds: list[dict[str, Any]] = []
    provenance: dict[str, Any] = {"strategy": strategy, "base_seed": int(seed), "n_requested": int(n_members)}
    for k in range(n_members):
        member_dir = output_dir / MEMBERS_SUBDIR / f"member-{k}"
        train_seed = int(seed) + k
        info: dict[str, Any] = {"strategy": strategy, "train_seed": train_seed}
        dsd = dataset_dict
        if strategy in ("bagging", "boosting"):
            if strategy == "bagging":
                idx, entropy = _bootstrap(n, seed, k)
            else:
                entropy = [int(seed), int(k), 1]
                rng = np.random.default_rng(np.random.SeedSequence(entropy))
                idx = rng.choice(n, size=n, replace=True, p=weights)
            info.update(resample_seed_sequence=entropy, n_unique=int(len(np.unique(idx))), n_resampled=int(n))
            dsd = copy.copy(dataset_dict)  # keeps the dataset facts of a GalaxyDatasetDict for the card
            if hasattr(dsd, "galaxy_info"):
                dsd.galaxy_info = dict(dsd.galaxy_info)  # the member's own copy, not the shared dict
            dsd["train"] = train.select(idx.tolist())
            recount_facts(dsd)  # the card shows the resample's sizes and class balance
        args_k = dataclasses.replace(training_args, output_dir=str(member_dir), seed=train_seed)
        logger.info(
            "training ensemble member %d/%d (%s, seed %d) in %s",
            k + 1,
            n_members,
            strategy,
            train_seed,
            member_dir,
        )
        run_training(script_args, args_k, model_args, data_args, dataset_dict=dsd)
        member = load_member(MemberSpec(str(member_dir.resolve()), seed=train_seed, info=info))
        if strategy == "boosting":
            pred = predict_members([member], train, **(predict_kwargs or {})).member_probs[0].argmax(axis=1)
            miss = pred != y
            err = float(weights[miss].sum())
            chance = 1.0 - 1.0 / n_classes
            rounds.append({"round": k, "weighted_error": err})
            if err >= chance:
                if not members:
                    raise ValueError(
                        f"boosting: the first member's weighted training error {err:.3f} is no better than chance "
                        f"({chance:.3f}); train longer or use another strategy"
                    )
                logger.warning("boosting stopped at round %d: weighted error %.3f >= %.3f", k, err, chance)
                provenance["stopped_early"] = f"round {k}: weighted training error {err:.4f} >= {chance:.4f}"
                break
            err = max(err, 1e-10)
            alpha = float(boosting_learning_rate * (math.log((1 - err) / err) + math.log(n_classes - 1)))
            info.update(weighted_error=err, alpha=alpha)
            alphas.append(alpha)
            weights = weights * np.exp(alpha * miss)
            weights /= weights.sum()
        members.append(member)
    if strategy == "boosting":
        provenance["rounds"] = rounds
        provenance["weights"] = alphas
    provenance["n_members"] = len(members)
    return members, provenance
