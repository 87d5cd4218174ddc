"""The :class:`GalaxyEnsemble`: members, a combination method, fitting on validation, evaluation, saving,
reloading and publishing (the card is rendered and the push made by :mod:`hf_galaxy.hub`)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hf_galaxy.ensemble import combine as maths
from hf_galaxy.ensemble.members import (
    EnsemblePredictions,
    LabelMismatchError,
    LoadedMember,
    MemberSpec,
    check_label_names,
    export_member,
    is_inside,
    load_member,
    local_member_dir,
    member_tree,
    predict_members,
    relative_or_absolute,
    unique_name,
)
from hf_galaxy.hub.card import jsonable
from hf_galaxy.hub.ensemble import MEMBERS_SUBDIR
from hf_galaxy.hub.render import README_NAME
from hf_galaxy.jsonio import read_json, write_json
from hf_galaxy.metrics import classification_metrics, nll, votes_are_informative

logger = logging.getLogger(__name__)


ENSEMBLE_CONFIG_NAME = "ensemble_config.json"


RESULTS_NAME = "ensemble_results.json"


FORMAT_NAME = "hf-galaxy-ensemble"


FORMAT_VERSION = 1


METHODS = ("soft", "hard", "weighted", "stacking")


TABLE_METRICS = ("accuracy", "macro_f1", "ece", "vote_rmse", "nll")


def member_metrics(
    probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str], votes: np.ndarray | None = None
) -> dict[str, float]:
    """accuracy, macro-F1, ECE, vote RMSE (when ``votes`` are real fractions) and log-loss (``nll``)."""
    out = classification_metrics(probs, labels, class_names, votes=votes)
    y = np.asarray(labels).astype(np.int64)
    keep = y >= 0
    out["nll"] = nll(np.asarray(probs, dtype=np.float64)[keep], y[keep])
    return out


def evaluation_rows(
    preds: EnsemblePredictions,
    ensemble_probs: np.ndarray,
    class_names: Sequence[str],
    ensemble_name: str = "ensemble",
) -> list[dict[str, Any]]:
    """One row per member, the members' mean, and the ensemble: accuracy, macro_f1, ece, vote_rmse, nll."""
    if preds.labels is None:
        raise ValueError("the split has no 'label' column: cannot compute metrics")
    votes = preds.votes if votes_are_informative(preds.votes) else None
    rows: list[dict[str, Any]] = []
    for name, p in zip(preds.member_names, preds.member_probs):
        rows.append({"model": name, **_table_metrics(member_metrics(p, preds.labels, class_names, votes))})
    member_rows = list(rows)
    mean = {"model": "mean of members"}
    for k in TABLE_METRICS:
        vals = [r[k] for r in member_rows if k in r]
        if vals:
            mean[k] = float(np.mean(vals))
    rows.append(mean)
    ens = member_metrics(ensemble_probs, preds.labels, class_names, votes)
    rows.append({"model": ensemble_name, **_table_metrics(ens)})
    return rows


TREE_TABLE_METRICS = ("tree_rmse", "tree_mae", "tree_calibration")


def tree_evaluation_rows(
    preds: EnsemblePredictions, ensemble_fractions: np.ndarray, tree: Any
) -> list[dict[str, Any]]:
    """:func:`evaluation_rows` for whole-tree members: vote-fraction RMSE, MAE and calibration over every
    question, per member, their mean and the ensemble (the dataset must have its ``counts``)."""
    from hf_galaxy.metrics import tree_metrics

    if preds.counts is None:
        raise ValueError(
            "the split has no 'counts' column: load it with label_scheme='tree' to score tree models"
        )
    rows: list[dict[str, Any]] = []
    for name, p in zip(preds.member_names, preds.member_probs):
        m = tree_metrics(p, preds.counts, tree)
        rows.append({"model": name, **{k: float(m[k]) for k in TREE_TABLE_METRICS}})
    rows.append(
        {"model": "mean of members", **{k: float(np.mean([r[k] for r in rows])) for k in TREE_TABLE_METRICS}}
    )
    m = tree_metrics(ensemble_fractions, preds.counts, tree)
    rows.append({"model": "ensemble (soft)", **{k: float(m[k]) for k in TREE_TABLE_METRICS}})
    return rows


def _table_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(metrics[k]) for k in TABLE_METRICS if k in metrics}


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A fixed-width text table of :func:`evaluation_rows` output (metrics with 4 decimals)."""
    if not rows:
        return ""
    if columns is None:
        columns = ["model"] + [k for k in (*TABLE_METRICS, *TREE_TABLE_METRICS) if any(k in r for r in rows)]
    cells = [[str(c) for c in columns]]
    for r in rows:
        cells.append(
            [(f"{r[c]:.4f}" if isinstance(r.get(c), float) else str(r.get(c, "-"))) for c in columns]
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = []
    for j, row in enumerate(cells):
        lines.append(
            "  ".join(v.ljust(widths[i]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(row))
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


class GalaxyEnsemble:
    """An ensemble of image classifiers with the same label set.

    Args:
        members: member ids (local directories or Hub ids) or :class:`MemberSpec` entries.
        method: ``soft``, ``hard``, ``weighted`` or ``stacking``.
        weights: member weights (``soft``/``hard``; fitted for ``weighted``). Normalised to sum to 1.
        meta_learner: a scikit-learn classifier with ``predict_proba`` for ``stacking`` (fitted by
            :meth:`fit`; default logistic regression). Only LogisticRegression can be saved.
        label_names: the expected class names (checked against every member when loaded).
        tta_rotations: default test-time rotation angles (multiples of 90) for predictions.
        provenance: how the members were made and the combination fitted (saved in the config).
        base_dir: folder that relative member paths are resolved against (set by :meth:`from_pretrained`).
    """

    def __init__(
        self,
        members: Sequence[str | MemberSpec | dict],
        *,
        method: str = "soft",
        weights: Sequence[float] | None = None,
        meta_learner: Any = None,
        label_names: Sequence[str] | None = None,
        tta_rotations: Sequence[int] | None = None,
        provenance: dict[str, Any] | None = None,
        base_dir: str | os.PathLike | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.members = [m if isinstance(m, MemberSpec) else MemberSpec.from_dict(m) for m in members]
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        self.method = method
        self.weights = None if weights is None else maths.normalise_weights(weights, len(self.members))
        self.meta_learner = meta_learner
        self.label_names = list(label_names) if label_names else None
        self.tta_rotations = list(tta_rotations) if tta_rotations else None
        self.provenance: dict[str, Any] = dict(provenance or {})
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.fit_info: dict[str, Any] = {}
        self.stacking_fit: maths.StackingFit | None = None
        self._loaded: list[LoadedMember] | None = None
        self._fit_fingerprint: str | None = None
        #: the members' decision tree when they are whole-tree models (set when they are loaded)
        self.tree: Any = None

    def __repr__(self) -> str:
        return f"GalaxyEnsemble(method={self.method!r}, members={[m.name_or_path for m in self.members]})"

    # ---- members
    def load(self) -> list[LoadedMember]:
        """Load every member (once) and check that they share the label map (and the tree)."""
        if self._loaded is None:
            loaded = [load_member(spec, self.base_dir) for spec in self.members]
            self._set_members(loaded)
        assert self._loaded is not None
        return self._loaded

    def _set_members(self, members: Sequence[LoadedMember]) -> None:
        self.label_names = check_label_names(members, self.label_names)
        self.tree = member_tree(members)
        if self.tree is not None and self.method not in ("soft", "weighted"):
            raise ValueError(
                f"method {self.method!r} needs class labels; an ensemble of whole-tree models averages each "
                "question's vote fractions: use method 'soft' (or 'weighted' with given weights)"
            )
        self._loaded = list(members)

    @classmethod
    def from_loaded(cls, members: Sequence[LoadedMember], **kwargs: Any) -> GalaxyEnsemble:
        """An ensemble over members that are already loaded (e.g. trained in this process)."""
        ens = cls([m.spec for m in members], **kwargs)
        ens._set_members(members)
        return ens

    # ---- prediction
    def predict_members(self, dataset: Any, **kwargs: Any) -> EnsemblePredictions:
        """Every member's probabilities on ``dataset`` in one pass (see :func:`predict_members`)."""
        kwargs.setdefault("tta_rotations", self.tta_rotations)
        return predict_members(self.load(), dataset, **kwargs)

    def check_predictions(self, preds: EnsemblePredictions) -> None:
        """Check that member predictions fit this ensemble: as many members, the same classes as the ensemble,
        and a dataset labelled with those classes (:class:`LabelMismatchError` showing both otherwise)."""
        n_members, _, n_classes = maths.check_probs(preds.member_probs).shape
        if n_members != len(self.members):
            raise ValueError(
                f"predictions of {n_members} members given; the ensemble has {len(self.members)}"
            )
        names = self.label_names
        if names and len(names) != n_classes:
            raise LabelMismatchError(
                f"the predictions have {n_classes} classes but the ensemble's label map is {dict(enumerate(names))}"
            )
        if names and preds.class_names is not None and list(preds.class_names) != list(names):
            raise LabelMismatchError(
                f"the dataset's label names {dict(enumerate(preds.class_names))} differ from the ensemble's "
                f"{dict(enumerate(names))}"
            )
        if preds.votes is not None and np.asarray(preds.votes).shape[-1] != n_classes:
            raise LabelMismatchError(
                f"the dataset's 'votes' have {np.asarray(preds.votes).shape[-1]} columns but the ensemble has "
                f"{n_classes} classes" + (f" {dict(enumerate(names))}" if names else "")
            )

    def combine(self, member_probs: np.ndarray) -> np.ndarray:
        """The ensemble's class probabilities ``(N, C)`` from member probabilities ``(M, N, C)``; for whole-tree
        members, each question's (weighted) mean vote fractions."""
        p = maths.check_probs(member_probs)
        if p.shape[0] != len(self.members):
            raise ValueError(
                f"probabilities of {p.shape[0]} members given; the ensemble has {len(self.members)}"
            )
        if self.method == "soft":
            return maths.soft_vote(p, self.weights)
        if self.method == "hard":
            return maths.hard_vote(p, self.weights)
        if self.method == "weighted":
            if self.weights is None:
                raise ValueError("method 'weighted' needs fitted weights: call fit(validation_split) first")
            return maths.soft_vote(p, self.weights)
        if self.meta_learner is None or not hasattr(self.meta_learner, "classes_"):
            raise ValueError(
                "method 'stacking' needs a fitted meta-learner: call fit(validation_split) first"
            )
        return maths.full_proba(self.meta_learner, maths.stack_features(p), p.shape[2])

    def predict_proba(self, dataset: Any, **kwargs: Any) -> np.ndarray:
        """The ensemble's class probabilities on ``dataset`` (one pass over the data for all members)."""
        return self.combine(self.predict_members(dataset, **kwargs).member_probs)

    # ---- fitting
    def fit(
        self,
        validation: Any,
        *,
        n_folds: int = 5,
        seed: int = 0,
        folds: np.ndarray | None = None,
        **predict_kwargs: Any,
    ) -> GalaxyEnsemble:
        """Fit the weights (``weighted``) or the cross-fitted meta-learner (``stacking``) on ``validation``.

        ``validation`` is a labelled dataset split or :class:`EnsemblePredictions` for it. Soft and hard
        voting need no fitting (their validation metrics are still recorded in ``fit_info``). A fitted
        ``weighted``/``stacking`` ensemble refuses to be evaluated on the same split (see :meth:`evaluate`).
        """
        preds = (
            validation
            if isinstance(validation, EnsemblePredictions)
            else self.predict_members(validation, **predict_kwargs)
        )
        if self.tree is not None:
            raise ValueError(
                "an ensemble of whole-tree models has nothing to fit: it averages each question's fractions"
            )
        self.check_predictions(preds)
        if preds.labels is None:
            raise ValueError("fitting the ensemble needs a labelled validation split ('label' column)")
        n_classes = preds.member_probs.shape[2]
        names = self.label_names or [str(i) for i in range(n_classes)]
        info: dict[str, Any] = {"fit_split_size": int(len(preds.labels))}
        if self.method == "weighted":
            self.weights = maths.fit_vote_weights(preds.member_probs, preds.labels)
            info["weights"] = self.weights.tolist()
        elif self.method == "stacking":
            fit = maths.cross_fit_stacking(
                preds.member_probs,
                preds.labels,
                n_classes,
                meta_learner=self.meta_learner,
                n_folds=n_folds,
                seed=seed,
                folds=folds,
            )
            self.meta_learner = fit.meta_learner
            self.stacking_fit = fit
            keep = preds.labels >= 0
            info.update(n_folds=len(fit.fold_models), fold_seed=seed)
            info["cross_fitted_validation"] = _table_metrics(
                member_metrics(fit.oof_probs[keep], preds.labels[keep], names)
            )
        if self.method != "stacking":
            info["validation"] = _table_metrics(
                member_metrics(self.combine(preds.member_probs), preds.labels, names)
            )
        self.fit_info = info
        self.provenance["fit"] = jsonable(info)
        self._fit_fingerprint = preds.fingerprint() if self.method in ("weighted", "stacking") else None
        return self

    # ---- evaluation
    def evaluate(self, dataset: Any, **predict_kwargs: Any) -> list[dict[str, Any]]:
        """Metrics of every member, the members' mean and the ensemble on a labelled split (one pass).

        Raises:
            ValueError: a ``weighted``/``stacking`` ensemble is evaluated on the split it was fitted on (its
                figures would be optimistic); evaluate on a held-out split.
            LabelMismatchError: the dataset's classes differ from the ensemble's.
        """
        preds = (
            dataset
            if isinstance(dataset, EnsemblePredictions)
            else self.predict_members(dataset, **predict_kwargs)
        )
        if self.tree is not None:
            return tree_evaluation_rows(preds, self.combine(preds.member_probs), self.tree)
        self.check_predictions(preds)
        if self._fit_fingerprint is not None and preds.fingerprint() == self._fit_fingerprint:
            raise ValueError(
                f"the {self.method!r} ensemble was fitted on this split ({len(preds.member_probs[0])} galaxies): its "
                "metrics here would be optimistic. Evaluate it on a held-out split (the test split); the "
                "cross-fitted validation figures of stacking are in fit_info['cross_fitted_validation']."
            )
        names = self.label_names or [str(i) for i in range(preds.member_probs.shape[2])]
        return evaluation_rows(preds, self.combine(preds.member_probs), names, f"ensemble ({self.method})")

    # ---- persistence
    def to_config(self) -> dict[str, Any]:
        """The content of ``ensemble_config.json``."""
        from hf_galaxy import __version__

        if self.method == "weighted" and self.weights is None:
            raise ValueError("method 'weighted' has no fitted weights yet: call fit(validation_split) first")
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "label_names": list(self.label_names or []),
            "members": [m.to_dict() for m in self.members],
            "weights": None if self.weights is None else self.weights.tolist(),
            "meta_learner": maths.meta_learner_to_json(self.meta_learner)
            if self.method == "stacking"
            else None,
            "tta_rotations": self.tta_rotations,
            "provenance": jsonable(self.provenance),
            "hf_galaxy_version": __version__,
        }

    def save_pretrained(
        self,
        save_dir: str | os.PathLike,
        *,
        copy_members: bool = False,
        results: dict[str, Any] | None = None,
        repo_id: str | None = None,
    ) -> Path:
        """Write ``ensemble_config.json`` (and ``ensemble_results.json`` + the ``README.md`` card).

        Local members inside ``save_dir`` are referenced by relative paths, other local members by absolute
        paths; with ``copy_members`` they are copied into ``save_dir/members/`` (model, processor, card data)
        so the folder is self-contained. Hub members keep their id, revision and resolved commit.
        """
        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.members:  # relative paths were relative to the folder the ensemble came from
            local = local_member_dir(spec.name_or_path, self.base_dir)
            if local is not None:
                spec.name_or_path = str(local.resolve())
        self.base_dir = None
        if copy_members:
            self._copy_local_members(save_dir)
        config = self.to_config()
        for entry in config["members"]:
            local = local_member_dir(entry["name_or_path"], None)
            if local is not None:
                entry["name_or_path"] = relative_or_absolute(local, save_dir)
        write_json(save_dir / ENSEMBLE_CONFIG_NAME, config)
        if results is not None:
            write_json(save_dir / RESULTS_NAME, jsonable(results))
        elif (save_dir / RESULTS_NAME).is_file():
            results = read_json(save_dir / RESULTS_NAME)
        from hf_galaxy.hub.ensemble import render_ensemble_card

        (save_dir / README_NAME).write_text(render_ensemble_card(config, results, repo_id=repo_id))
        return save_dir

    def _copy_local_members(self, save_dir: Path) -> None:
        loaded = self.load()
        used: set[str] = set()
        for i, (spec, member) in enumerate(zip(self.members, loaded)):
            local = local_member_dir(spec.name_or_path, None)
            if local is None or is_inside(local, save_dir):
                continue
            name = unique_name(f"member-{i}-{local.resolve().name}", used)
            dst = save_dir / MEMBERS_SUBDIR / name
            export_member(member, dst)
            spec.name_or_path = str(dst.resolve())

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, *, revision: str | None = None, load_members: bool = True
    ) -> GalaxyEnsemble:
        """Reload a saved ensemble from a folder or a Hub repo (downloaded, or from the cache when offline)."""
        path = Path(name_or_path).expanduser()
        if not path.is_dir():
            if str(name_or_path).startswith((".", "/", "~")):
                raise FileNotFoundError(f"ensemble directory {path} does not exist")
            from hf_galaxy.hub import pull

            path = pull(str(name_or_path), revision=revision)
        config_path = path / ENSEMBLE_CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(f"{path} holds no {ENSEMBLE_CONFIG_NAME}: not a saved hf-galaxy ensemble")
        config = read_json(config_path)
        if config.get("format") != FORMAT_NAME:
            raise ValueError(f"{config_path} is not an hf-galaxy ensemble config (format {FORMAT_NAME!r})")
        if int(config.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"{config_path} has format_version {config['format_version']}; this hf-galaxy reads up to "
                f"{FORMAT_VERSION}: upgrade hf-galaxy"
            )
        missing = [key for key in ("members", "method") if not config.get(key)]
        if missing:
            raise ValueError(
                f"{config_path} lacks (or has empty) the required key(s) {missing}: an ensemble config needs 'members' (the member "
                f"ids) and 'method' (one of {METHODS}); save the ensemble with GalaxyEnsemble.save_pretrained"
            )
        if not isinstance(config["members"], list):
            raise ValueError(
                f"{config_path}: 'members' must be a list of member ids, got {config['members']!r}"
            )
        meta = config.get("meta_learner")
        needs = {"stacking": ("meta_learner", meta), "weighted": ("weights", config.get("weights"))}
        if config["method"] in needs and not needs[config["method"]][1]:
            key = needs[config["method"]][0]
            raise ValueError(
                f"{config_path}: method {config['method']!r} needs the key {key!r} (fitted on validation)"
            )
        try:
            ens = cls(
                config["members"],
                method=config["method"],
                weights=config.get("weights"),
                meta_learner=maths.meta_learner_from_json(meta) if meta else None,
                label_names=config.get("label_names"),
                tta_rotations=config.get("tta_rotations"),
                provenance=config.get("provenance"),
                base_dir=path,
            )
        except ValueError as err:
            raise ValueError(f"{config_path}: {err}") from err
        if load_members:
            ens.load()
        return ens

    def push_to_hub(self, repo_id: str, save_dir: str | os.PathLike | None = None, **kwargs: Any) -> Any:
        """Save (to ``save_dir`` or a temporary folder) and publish with :func:`publish_ensemble`."""
        if save_dir is not None:
            return publish_ensemble(self.save_pretrained(save_dir), repo_id, **kwargs)
        with tempfile.TemporaryDirectory(prefix="hf_galaxy_ensemble_") as tmp:
            return publish_ensemble(self.save_pretrained(tmp), repo_id, **kwargs)


def publish_ensemble(
    ensemble_dir: str | os.PathLike,
    repo_id: str,
    *,
    license: str = "mit",
    **push_options: Any,
) -> Any:
    """Publish a saved ensemble folder to the Hub in one commit, with its card listing the members.

    Uploads ``ensemble_config.json``, ``ensemble_results.json``, the rendered ``README.md`` and the members
    that are local directories (their model, processor and card data under ``members/``; the uploaded config
    points at them by relative path), so ``GalaxyEnsemble.from_pretrained(repo_id)`` works anywhere. Hub
    members stay references (id + commit). Local paths in the published JSON are reduced to base names.

    The push goes through :func:`hf_galaxy.hub.push_plan`, like :func:`hf_galaxy.hub.publish`, with the same
    ``push_options`` (``private``, ``revision``, ``commit_message``, ``dry_run_dir``, ``token``,
    ``endpoint``): ``repo_id`` and ``revision`` are validated before any network call, ``dry_run_dir`` (new or
    empty, outside ``ensemble_dir``) gets the folder that would be pushed instead, ``private=True`` is refused
    for an existing public repo, a missing token for the real Hub says how to log in, and a rejected or
    dropped upload raises :class:`hf_galaxy.hub.PublishError`. Returns a :class:`hf_galaxy.hub.PublishResult`.
    """
    from hf_galaxy.hub.publish import check_repo_id, check_revision

    unknown = set(push_options) - {
        "private",
        "revision",
        "commit_message",
        "dry_run_dir",
        "token",
        "endpoint",
    }
    if unknown:
        raise TypeError(f"publish_ensemble() got unexpected keyword argument(s) {sorted(unknown)}")
    check_repo_id(repo_id)
    check_revision(push_options.get("revision"))
    from hf_galaxy.hub.ensemble import published_results, push_ensemble_folder
    from hf_galaxy.hub.sanitize import strip_local_paths

    ensemble_dir = Path(ensemble_dir)
    ens = GalaxyEnsemble.from_pretrained(ensemble_dir, load_members=False)
    with tempfile.TemporaryDirectory(prefix="hf_galaxy_publish_ensemble_") as tmp:
        staging = Path(tmp)
        used: set[str] = set()
        for i, spec in enumerate(ens.members):
            local = local_member_dir(spec.name_or_path, ensemble_dir)
            if local is None:
                continue
            name = unique_name(
                local.resolve().relative_to(ensemble_dir.resolve() / MEMBERS_SUBDIR).as_posix()
                if is_inside(local, ensemble_dir / MEMBERS_SUBDIR)
                else f"member-{i}-{local.resolve().name}",
                used,
            )
            export_member(
                load_member(MemberSpec(str(local.resolve())), None), staging / MEMBERS_SUBDIR / name
            )
            spec.name_or_path = f"{MEMBERS_SUBDIR}/{name}"
        ens.base_dir = staging
        # member ids stay as they are (Hub ids, or members/... in this upload); everything else loses local paths
        config = strip_local_paths(
            ens.to_config(),
            keep=lambda where: len(where) == 3 and where[0] == "members" and where[2] == "name_or_path",
        )
        write_json(staging / ENSEMBLE_CONFIG_NAME, config)
        results = None
        if (ensemble_dir / RESULTS_NAME).is_file():
            results = read_json(ensemble_dir / RESULTS_NAME)
            results = published_results(results, [m["name_or_path"] for m in config["members"]])
            write_json(staging / RESULTS_NAME, results)
        return push_ensemble_folder(
            staging, ensemble_dir, repo_id, config, results, license=license, **push_options
        )
