"""Ensemble members: specs, loading (local or Hub, at a pinned commit), label-map checks, predictions of all
members in one pass (:func:`hf_galaxy.inference.predict_probs`) and the publishable copy of a member."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from hf_galaxy.data.dataset import label_names as dataset_label_names
from hf_galaxy.hub.card import jsonable
from hf_galaxy.jsonio import read_json, write_json

logger = logging.getLogger(__name__)


MEMBER_FILES = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "preprocessor_config.json",
    "hf_galaxy_card.json",
    "all_results.json",
    "eval_results.json",
    "test_results.json",
    "train_results.json",
)


class LabelMismatchError(ValueError):
    """Two members, a member and the ensemble, or the members and a dataset have different label maps."""


@dataclass
class MemberSpec:
    """One member: a local checkpoint directory (absolute, or relative to the ensemble folder) or a Hub id.

    ``revision`` is the requested Hub revision, ``commit`` the resolved Hub commit (recorded so that a
    reloaded ensemble uses the same weights). ``seed`` is the training seed when known; ``info`` holds
    provenance such as the bootstrap seed or the boosting round.
    """

    name_or_path: str
    revision: str | None = None
    commit: str | None = None
    seed: int | None = None
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "name_or_path": self.name_or_path,
            "revision": self.revision,
            "commit": self.commit,
            "seed": self.seed,
            "info": jsonable(self.info),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str) -> MemberSpec:
        """Inverse of :meth:`to_dict` (a bare string is a member id)."""
        if isinstance(data, str):
            return cls(data)
        if not isinstance(data, dict) or not data.get("name_or_path"):
            raise ValueError(
                f"a member entry must be a string or an object with 'name_or_path', got {data!r}"
            )
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"member entry {data.get('name_or_path')!r} has unknown keys {sorted(unknown)}")
        return cls(**data)


@dataclass
class LoadedMember:
    """A member loaded for inference."""

    spec: MemberSpec
    model: nn.Module
    processor: Any
    label_names: list[str]
    path: Path

    @property
    def name(self) -> str:
        return self.spec.name_or_path


def _commit_of(path: Path) -> str | None:
    """The Hub commit of a snapshot folder (``.../snapshots/<sha>``), or None."""
    if path.parent.name == "snapshots" and len(path.name) == 40:
        return path.name
    return None


def local_member_dir(name: str, base_dir: Path | None) -> Path | None:
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).is_dir():
        return base_dir / path
    if path.is_dir():
        return path
    if path.is_absolute() or name.startswith((".", "~")):
        raise FileNotFoundError(f"member directory {path} does not exist")
    return None


def load_member(spec: MemberSpec | str, base_dir: str | os.PathLike | None = None) -> LoadedMember:
    """Load one member for inference (eval mode); local directories win over Hub ids of the same name.

    Relative paths are resolved against ``base_dir`` (the ensemble folder) first. Hub ids are downloaded
    (or taken from the local cache when offline) at ``spec.commit`` or ``spec.revision``.
    """
    from hf_galaxy.models import ModelNotFoundError, load_for_inference, model_label_names

    spec = MemberSpec.from_dict(spec) if not isinstance(spec, MemberSpec) else spec
    base = Path(base_dir) if base_dir is not None else None
    local = local_member_dir(spec.name_or_path, base)
    if local is None:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

        try:
            local = Path(snapshot_download(spec.name_or_path, revision=spec.commit or spec.revision))
        except HFValidationError as err:
            raise ModelNotFoundError(
                f"member {spec.name_or_path!r} is neither an existing directory nor a valid Hub id ({err})"
            ) from err
        except (LocalEntryNotFoundError, OSError) as err:
            raise ModelNotFoundError(
                f"member {spec.name_or_path!r} (revision {spec.commit or spec.revision or 'main'}) could not be "
                f"downloaded and is not in the local Hugging Face cache: {err}"
            ) from err
        spec.commit = spec.commit or _commit_of(local)
    model, processor = load_for_inference(str(local))
    return LoadedMember(
        spec=spec,
        model=model,
        processor=processor,
        label_names=model_label_names(model, f"member {spec.name_or_path}"),
        path=local,
    )


def check_label_names(members: Sequence[LoadedMember], expected: Sequence[str] | None = None) -> list[str]:
    """The shared label names of ``members``; :class:`LabelMismatchError` showing both maps otherwise."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    ref_name, ref = (
        ("the ensemble", list(expected)) if expected else (members[0].name, members[0].label_names)
    )
    for m in members:
        if m.label_names != ref:
            raise LabelMismatchError(
                f"label maps differ: member {m.name!r} has id2label {dict(enumerate(m.label_names))} but "
                f"{ref_name!r} has {dict(enumerate(ref))}. All members must share the same classes in the same order."
            )
    return list(ref)


def member_tree(members: Sequence[LoadedMember]) -> Any:
    """The decision tree of whole-tree members (:class:`~hf_galaxy.data.tree.TreeLayout`), None for
    classifiers; :class:`LabelMismatchError` when some members are tree models and others are not, or their
    trees differ."""
    from hf_galaxy.data.tree import tree_layout_of

    trees = [tree_layout_of(getattr(m.model, "config", None)) for m in members]
    if all(t is None for t in trees):
        return None
    if any(t != trees[0] for t in trees):
        raise LabelMismatchError(
            "the members do not share one decision tree: "
            + ", ".join(f"{m.name}: {t.name if t else 'a classifier'}" for m, t in zip(members, trees))
        )
    return trees[0]


def check_dataset_labels(dataset: Any, label_names: Sequence[str]) -> None:
    """Check that ``dataset`` labels the classes ``label_names`` (the members' id2label) in the same order.

    Compares the ``label`` ClassLabel names and the width of the ``votes`` column with the members' classes.

    Raises:
        LabelMismatchError: showing the dataset's and the members' label maps (or the votes width).
    """
    names = dataset_label_names(dataset)
    members = dict(enumerate(label_names))
    if names is not None and names != list(label_names):
        raise LabelMismatchError(
            f"the dataset's label names {dict(enumerate(names))} differ from the members' id2label {members}; "
            "the members were trained on other classes (or another order). Load the dataset with the label scheme "
            "the members were trained with."
        )
    features = getattr(dataset, "features", None)
    votes = features.get("votes") if features is not None and hasattr(features, "get") else None
    width = getattr(votes, "length", None)
    if isinstance(width, int) and width >= 0 and width != len(label_names):
        raise LabelMismatchError(
            f"the dataset's 'votes' column has {width} columns but the members have {len(label_names)} classes "
            f"{members}; the vote fractions must be aligned with the class names"
        )


@dataclass
class EnsemblePredictions:
    """Per-member class probabilities for one dataset split.

    Attributes:
        member_probs: ``(n_members, n_samples, n_classes)`` probabilities (TTA-averaged when asked).
        labels: integer labels (``-1``/``-100`` for unlabelled rows) or None.
        votes: vote fractions ``(n_samples, n_classes)`` or None.
        ids: galaxy ids (empty when the split has no ``id`` column).
        member_names: member ids in order.
        class_names: the dataset's class names (its ``label`` ClassLabel), when known.
    """

    member_probs: np.ndarray
    labels: np.ndarray | None
    votes: np.ndarray | None
    ids: list[str]
    member_names: list[str]
    class_names: list[str] | None = None
    #: whole-tree members: the dataset's answer counts ``(n_samples, n_answers)`` when it has them
    counts: np.ndarray | None = None

    def fingerprint(self) -> str:
        """A digest of the member probabilities and labels (identifies the split they were computed on)."""
        digest = hashlib.sha256(np.ascontiguousarray(self.member_probs, dtype=np.float64).tobytes())
        if self.labels is not None:
            digest.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        return digest.hexdigest()

    @property
    def n_members(self) -> int:
        return int(self.member_probs.shape[0])

    def subset(self, members: Sequence[int]) -> EnsemblePredictions:
        """The same predictions for a subset of the members."""
        idx = list(members)
        return dataclasses.replace(
            self, member_probs=self.member_probs[idx], member_names=[self.member_names[i] for i in idx]
        )


def predict_members(
    members: Sequence[LoadedMember],
    dataset: Any,
    *,
    batch_size: int = 32,
    tta_rotations: Sequence[int] | None = None,
    device: Any = None,
    num_workers: int = 0,
    precision: str = "fp32",
    progress: bool = True,
    image_column: str = "image",
) -> EnsemblePredictions:
    """Class probabilities of every member on ``dataset`` in one pass over the data.

    ``dataset`` is a ``datasets.Dataset`` with an ``image`` column (and optionally ``label``, ``votes``,
    ``id``). Each batch is decoded once and preprocessed once per distinct image-processor configuration
    (size, mean/std, rescaling, resampling); with ``tta_rotations`` (multiples of 90 degrees) each
    preprocessed batch is rotated once per angle and every member's softmax is averaged over the angles
    (:func:`hf_galaxy.inference.predict_probs`). Shows a tqdm progress bar.

    Raises:
        LabelMismatchError: the members' label maps differ from each other, from the dataset's ``label`` names,
            or from the width of its ``votes`` column.
    """
    from hf_galaxy.inference import predict_probs

    if not members:
        raise ValueError("predict_members needs at least one member")
    label_names = check_label_names(members)
    tree = member_tree(members)
    if tree is None:
        check_dataset_labels(dataset, label_names)
    n_classes = len(label_names)
    out = predict_probs(
        [m.model for m in members],
        [m.processor for m in members],
        dataset,
        batch_size=batch_size,
        tta_rotations=tta_rotations,
        device=device,
        precision=precision,
        num_workers=num_workers,
        progress=progress,
        desc=f"predict ({len(members)} members)",
        image_column=image_column,
    )
    if out.skipped:
        raise ValueError(f"{len(out.skipped)} images of the dataset could not be read, e.g. {out.skipped[0]}")
    if tree is not None:  # per-question fractions; the dataset's label is its first question's answer
        if out.counts is not None and out.counts.shape[1] != tree.n_answers:
            raise LabelMismatchError(
                f"the dataset's 'counts' have {out.counts.shape[1]} answers but the members' tree {tree.name!r} has "
                f"{tree.n_answers}"
            )
        return EnsemblePredictions(
            member_probs=out.probs, labels=None, votes=None, ids=out.ids, member_names=[m.name for m in members],
            counts=out.counts,
        )  # fmt: skip
    if out.votes is not None and (out.votes.ndim != 2 or out.votes.shape[1] != n_classes):
        raise LabelMismatchError(
            f"the dataset's 'votes' rows have shape {out.votes.shape[1:]} but the members have {n_classes} classes "
            f"{dict(enumerate(label_names))}; the vote fractions must be aligned with the class names"
        )
    if out.labels is not None and out.labels.size and int(out.labels.max()) >= n_classes:
        raise LabelMismatchError(
            f"the dataset has label ids up to {int(out.labels.max())} but the members have only {n_classes} classes "
            f"{dict(enumerate(label_names))}"
        )
    return EnsemblePredictions(
        member_probs=out.probs,
        labels=out.labels,
        votes=out.votes,
        ids=out.ids,
        member_names=[m.name for m in members],
        class_names=dataset_label_names(dataset),
    )


def is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def relative_or_absolute(path: Path, folder: Path) -> str:
    if is_inside(path, folder):
        return path.resolve().relative_to(folder.resolve()).as_posix()
    return str(path.resolve())


def unique_name(name: str, used: set[str]) -> str:
    base, k = name, 1
    while name in used:
        k += 1
        name = f"{base}-{k}"
    used.add(name)
    return name


def export_member(member: LoadedMember, dst: str | os.PathLike) -> Path:
    """Write a member's publishable files to ``dst``: its model files (a LoRA run's merged model when the
    directory has no top-level model), image processor and card data. Never checkpoints or optimizer states.
    """
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    src = member.path
    if (src / "config.json").is_file() and (
        (src / "model.safetensors").is_file() or (src / "model.safetensors.index.json").is_file()
    ):
        for name in MEMBER_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, dst / name)
        index = src / "model.safetensors.index.json"
        if index.is_file():
            for shard in set(read_json(index).get("weight_map", {}).values()):
                shutil.copyfile(src / shard, dst / shard)
    else:  # adapter-only output or a non-safetensors checkpoint: save the loaded (merged) model
        member.model.save_pretrained(dst)
        member.processor.save_pretrained(dst)
        for name in ("hf_galaxy_card.json", "test_results.json", "all_results.json"):
            if (src / name).is_file():
                shutil.copyfile(src / name, dst / name)
    if not (dst / "preprocessor_config.json").is_file():
        member.processor.save_pretrained(dst)
    _strip_member_paths(dst)
    return dst


def _strip_member_paths(folder: Path) -> None:
    """Reduce the local paths in a member copy's JSON files (card data, metrics, configs) to base names."""
    from hf_galaxy.hub.card import CARD_DATA_FILENAME, GalaxyCardData
    from hf_galaxy.hub.publish import public_card_dict
    from hf_galaxy.hub.sanitize import clean_json_file

    card_path = folder / CARD_DATA_FILENAME
    for path in sorted(folder.rglob("*.json")):
        if path == card_path:
            try:
                write_json(path, public_card_dict(GalaxyCardData.load(path)))
                continue
            except (TypeError, ValueError) as err:  # card data of another version: clean it as plain JSON
                logger.warning("%s: %s; cleaning it as plain JSON", path, err)
        clean_json_file(path, path)
