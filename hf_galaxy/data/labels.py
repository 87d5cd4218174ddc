"""Votes -> labels: the label schemes astronomers use on Galaxy Zoo vote fractions.

Schemes (``label_scheme``):

``plurality``
    argmax of the question's vote fractions (Lintott et al. 2011 call this "greater"). Ties go to the
    first answer in tree order.
``clean``
    keep a galaxy only when its winning fraction is >= ``threshold`` (0.8 as in Lintott et al. 2011;
    0.95 is their "superclean"); the rest are dropped and counted.
``votes``
    the fraction vector is kept as a soft target (normalised over the classes), plus its argmax as label.
``column``
    a ready label column of the catalogue (``label_column=``, e.g. ``ring``), or an image folder's class.
``tree``
    the whole decision tree: the vote count of every answer of every question (``Labels.answer_counts``, laid
    out by ``Labels.tree``, a :class:`~hf_galaxy.data.tree.TreeLayout`), for whole-tree models. The counts are
    the catalogue's own (GZ2, GZ DECaLS/DESI volunteer tables) or, for releases with fractions only (Kaggle),
    rebuilt from the fractions and the tree for :data:`NOMINAL_VOLUNTEERS` volunteers per galaxy (or the
    catalogue's ``nvotes``). The label is the root question's majority answer (for the stratified split).
    A question of the release's tree with only some of its answer columns is an error naming it, unless
    ``tree_questions="complete"`` keeps only the complete questions (or a list of questions picks them).

``question`` picks a decision-tree question (GZ2, Kaggle, DECaLS); galaxies for which fewer than
``min_share_asked`` of the volunteers reached that question (the product of the parent answers'
fractions) are dropped, as Walmsley et al. 2022 do. ``classes`` selects, orders or merges classes (a
list of class names, a ``{new: [old, ...]}`` mapping, or a preset name from :data:`CLASS_PRESETS`).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hf_galaxy.data.catalogs.base import Catalog, CatalogError, DecisionTree, Question

logger = logging.getLogger(__name__)

LABEL_SCHEMES = ("plurality", "clean", "votes", "column", "tree")
#: volunteers per galaxy assumed when counts are rebuilt from fractions and the catalogue has no ``nvotes``
#: (GZ2 galaxies had a median of about 44 classifications, Willett et al. 2013)
NOMINAL_VOLUNTEERS = 40

#: Named class merges. GZ1 "spiral" follows the P_CS convention: spiral = cw + acw + edge-on.
CLASS_PRESETS: dict[str, dict[str, list[str]]] = {
    "elliptical-spiral-other": {
        "elliptical": ["elliptical"],
        "spiral": ["clockwise_spiral", "anticlockwise_spiral", "edge_on"],
        "other": ["star_or_unknown", "merger"],
    },
    "elliptical-spiral": {
        "elliptical": ["elliptical"],
        "spiral": ["clockwise_spiral", "anticlockwise_spiral", "edge_on"],
    },
    "no-chirality": {
        "elliptical": ["elliptical"],
        "spiral": ["clockwise_spiral", "anticlockwise_spiral"],
        "edge_on": ["edge_on"],
        "star_or_unknown": ["star_or_unknown"],
        "merger": ["merger"],
    },
}


class LabelError(ValueError):
    """The labelling options do not fit the catalogue, or nothing is left after filtering."""


@dataclass
class Labels:
    """Result of :func:`make_labels`: one label and one vote vector per kept catalogue row."""

    table: pd.DataFrame
    labels: np.ndarray
    votes: np.ndarray
    class_names: list[str]
    scheme: str
    question: str | None = None
    threshold: float | None = None
    dropped: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    #: ``tree`` scheme: ``(n, A)`` int64 vote counts of every answer, and their layout
    answer_counts: np.ndarray | None = None
    tree: Any = None

    def class_counts(self) -> dict[str, int]:
        """Number of kept galaxies per class, in class order."""
        c = Counter(self.labels.tolist())
        return {name: int(c.get(i, 0)) for i, name in enumerate(self.class_names)}


def class_name(tree: DecisionTree, question: Question, answer: str) -> str:
    """Stable snake_case class name of an answer (the answer alone for one-question trees like GZ1)."""
    raw = answer if len(tree.questions) == 1 else f"{question.name}_{answer}"
    return raw.replace("-", "_").replace(" ", "_").lower()


def share_asked(table: pd.DataFrame, tree: DecisionTree, question: Question) -> np.ndarray:
    """Share of volunteers who reached ``question``: the product of parent fractions along its path.

    A parent answer written ``"!answer"`` means "any answer but this one" (GZ2's task 06 is reached by every
    path except star/artifact). Parent questions whose columns are absent from the table count as fully reached.
    """
    share = np.ones(len(table), dtype=np.float64)
    q = question
    seen = set()
    while q.parent is not None and q.name not in seen:
        seen.add(q.name)
        parent_q, parent_a = q.parent
        negate = parent_a.startswith("!")
        col = f"{parent_q}_{parent_a.lstrip('!')}"
        if col not in table.columns:
            break
        frac = np.nan_to_num(table[col].to_numpy(dtype=np.float64), nan=0.0)
        share *= 1.0 - frac if negate else frac
        try:
            q = tree.question(parent_q)
        except CatalogError:
            break
    return share


def _resolve_classes(
    classes: Sequence[str] | Mapping[str, Sequence[str]] | str | None, names: list[str]
) -> dict[str, list[str]]:
    """Turn the ``classes`` option into an ordered ``{new_class: [source classes]}`` mapping."""
    if classes is None:
        return {n: [n] for n in names}
    if isinstance(classes, str):
        if classes not in CLASS_PRESETS:
            raise LabelError(
                f"classes={classes!r} is not a preset; presets: {', '.join(CLASS_PRESETS)}, "
                "or pass a list of class names or a {new: [old, ...]} mapping"
            )
        mapping = CLASS_PRESETS[classes]
    elif isinstance(classes, Mapping):
        mapping = {str(k): [v] if isinstance(v, str) else list(v) for k, v in classes.items()}
    else:
        mapping = {str(c): [str(c)] for c in classes}
    unknown = sorted({s for srcs in mapping.values() for s in srcs} - set(names))
    if unknown:
        raise LabelError(f"classes: unknown class name(s) {unknown}; the available classes are {names}")
    used = [s for srcs in mapping.values() for s in srcs]
    reused = sorted({s for s in used if used.count(s) > 1})
    if reused:
        raise LabelError(f"classes: {reused} appear in more than one merged class of {dict(mapping)}")
    return mapping


def _drop(
    keep: np.ndarray,
    mask: np.ndarray,
    reason: str,
    ids: np.ndarray,
    dropped: list,
    counts: dict,
    strict: bool,
) -> None:
    """Mark rows in ``mask`` (among those still kept) as dropped for ``reason``."""
    newly = keep & mask
    n = int(newly.sum())
    if n == 0:
        return
    if strict:
        first = ids[np.flatnonzero(newly)[0]]
        raise LabelError(f"row id={first}: {reason} (strict=True stops at the first problem)")
    counts[reason] = counts.get(reason, 0) + n
    dropped.extend((str(i), reason) for i in ids[newly])
    keep &= ~newly


def make_labels(
    catalog: Catalog,
    *,
    label_scheme: str = "plurality",
    label_column: str | None = None,
    question: str | None = None,
    threshold: float = 0.8,
    classes: Sequence[str] | Mapping[str, Sequence[str]] | str | None = None,
    min_share_asked: float = 0.5,
    sum_tolerance: float = 0.05,
    strict: bool = False,
    tree_questions: str | Sequence[str] | None = None,
) -> Labels:
    """Derive class labels and vote vectors from a canonical catalogue.

    Rows with invalid fractions (NaN, negative, > 1, or answers of one question not summing to ~1 within
    ``sum_tolerance``), rows below the ``clean`` threshold, rows whose question was reached by fewer than
    ``min_share_asked`` of volunteers, and rows outside the selected classes are dropped; each is listed in
    ``Labels.dropped`` with its reason and counted in ``Labels.counts``. An empty result raises
    :class:`LabelError` saying which filter removed how many rows.
    """
    if label_scheme not in LABEL_SCHEMES:
        raise LabelError(f"label_scheme={label_scheme!r} is not one of {', '.join(LABEL_SCHEMES)}")
    if not 0.0 < threshold <= 1.0:
        raise LabelError(f"threshold={threshold} must be in (0, 1]")
    if label_scheme == "tree":
        return _tree_labels(catalog, strict, tree_questions)
    table = catalog.table.reset_index(drop=True)
    ids = table["id"].astype(str).to_numpy()
    n = len(table)
    keep = np.ones(n, dtype=bool)
    dropped: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    tree = catalog.tree if catalog.tree is not None and catalog.tree.questions else None

    if label_column is not None or label_scheme == "column" or (tree is None and catalog.label_columns):
        col = label_column or (catalog.label_columns[0] if catalog.label_columns else None)
        if col is None:
            raise LabelError(
                f"{catalog.source}: label_scheme='column' needs label_column=...; the catalogue has no ready "
                "label column"
            )
        if label_column is None and label_scheme != "column":
            logger.info("%s has no vote questions; using its label column %r", catalog.source, col)
        values, names = _column_labels(catalog, table, col, keep, ids, dropped, counts, strict)
        scheme_used, q_name = "column", None
        raw_votes = np.eye(len(names), dtype=np.float64)[np.where(values >= 0, values, 0)]
    else:
        if tree is None:
            raise LabelError(
                f"{catalog.source}: the {catalog.release} catalogue has no complete vote question and no "
                "label column, so no labels can be derived; pass label_column=<column>"
            )
        q = tree.question(question) if question is not None else tree.root
        if question is None and len(tree.questions) > 1:
            logger.info("no question given: labelling by the root question %r", q.name)
        names = [class_name(tree, q, a) for a in q.answers]
        frac = table[q.columns()].to_numpy(dtype=np.float64)
        share = share_asked(table, tree, q)
        _drop(
            keep,
            share < min_share_asked,
            f"question {q.name!r} reached by fewer than {min_share_asked:.0%} of volunteers",
            ids,
            dropped,
            counts,
            strict,
        )
        bad = np.isnan(frac).any(axis=1) | (frac < 0).any(axis=1) | (frac > 1).any(axis=1)
        _drop(keep, bad, "vote fraction NaN, negative or > 1", ids, dropped, counts, strict)
        sums = np.nansum(frac, axis=1)
        _drop(
            keep,
            np.abs(sums - 1.0) > sum_tolerance,
            f"vote fractions of {q.name!r} do not sum to 1 (tolerance {sum_tolerance})",
            ids,
            dropped,
            counts,
            strict,
        )
        raw_votes = np.nan_to_num(frac, nan=0.0)
        values = np.argmax(raw_votes, axis=1)
        scheme_used, q_name = label_scheme, q.name

    mapping = _resolve_classes(classes, names)
    new_names = list(mapping)
    src_index = {nm: i for i, nm in enumerate(names)}
    merged = np.zeros((n, len(new_names)), dtype=np.float64)
    old_to_new = np.full(len(names), -1)
    for j, srcs in enumerate(mapping.values()):
        for s in srcs:
            merged[:, j] += raw_votes[:, src_index[s]]
            old_to_new[src_index[s]] = j

    if scheme_used == "column":
        labels = np.where(values >= 0, old_to_new[np.clip(values, 0, None)], -1)
        _drop(keep, labels < 0, "class not among the selected classes", ids, dropped, counts, strict)
        votes = merged
    else:
        covered = merged.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            votes = np.where(covered[:, None] > 0, merged / covered[:, None], 0.0)
        labels = np.argmax(merged, axis=1)
        if classes is not None:
            # A pure selection drops galaxies whose plurality answer is not selected. A merge can change which
            # class wins, so there the votes left out of every merged class (the uncovered share) compete as one
            # more class: a galaxy whose uncovered share is at least its best merged class is dropped.
            if all(len(srcs) == 1 for srcs in mapping.values()):
                outside = old_to_new[np.argmax(raw_votes, axis=1)] < 0
            else:
                outside = (raw_votes.sum(axis=1) - covered) >= merged.max(axis=1)
            _drop(
                keep, outside, "plurality class not among the selected classes", ids, dropped, counts, strict
            )
        if scheme_used == "clean":
            win = np.take_along_axis(merged, labels[:, None], axis=1)[:, 0]
            _drop(
                keep,
                win < threshold,
                f"winning vote fraction below threshold {threshold}",
                ids,
                dropped,
                counts,
                strict,
            )

    if not keep.any():
        detail = (
            "; ".join(f"{reason}: {k} of {n} rows" for reason, k in counts.items()) or "no rows in catalogue"
        )
        raise LabelError(f"{catalog.source}: no galaxies left after filtering ({detail})")
    return Labels(
        table=table.loc[keep].reset_index(drop=True),
        labels=labels[keep].astype(np.int64),
        votes=votes[keep].astype(np.float32),
        class_names=new_names,
        scheme=scheme_used,
        question=q_name,
        threshold=threshold if scheme_used == "clean" else None,
        dropped=dropped,
        counts=counts,
    )


def partial_questions(catalog: Catalog) -> dict[str, list[str]]:
    """Questions of the release's full tree that the catalogue has only some answers of: ``{question:
    [missing answers]}`` (the readers keep only complete questions in ``Catalog.tree``)."""
    from hf_galaxy.data.catalogs.trees import TREES

    tree = catalog.tree
    full = TREES.get(tree.name) if tree is not None else None
    if full is None:
        return {}
    columns = set(catalog.table.columns)
    flagged = set(catalog.meta.get("partial_questions") or ())  # readers that keep native columns say so
    out = {}
    for q in full.questions:
        present = [
            any(f"{q.name}_{a}{suffix}" in columns for suffix in ("", "_fraction", "_count"))
            for a in q.answers
        ]
        if (any(present) and not all(present)) or q.name in flagged:
            out[q.name] = [a for a, ok in zip(q.answers, present) if not ok] or list(q.answers)
    return out


def _tree_subset(catalog: Catalog, tree_questions: str | Sequence[str] | None) -> DecisionTree:
    """The questions a whole-tree dataset keeps (see :func:`tree_counts`)."""
    tree = catalog.tree
    assert tree is not None
    partial = partial_questions(catalog)
    if tree_questions in (None, "", "all"):
        if partial:
            q, missing = next(iter(partial.items()))
            more = f" (and {len(partial) - 1} more question(s))" if len(partial) > 1 else ""
            raise LabelError(
                f"{catalog.source}: the tree is incomplete: question {q!r} lacks the answer(s) "
                f"{', '.join(missing)}{more}; pass tree_questions='complete' (--tree_questions complete) to "
                "keep only the complete questions"
            )
        return tree
    if tree_questions == "complete":
        keep = [q.name for q in tree.questions]
    else:
        names = tree_questions.split(",") if isinstance(tree_questions, str) else list(tree_questions)
        keep = []
        for name in (n.strip() for n in names if n.strip()):
            if name in partial:
                raise LabelError(
                    f"{catalog.source}: tree_questions names {name!r}, which lacks the answer(s) "
                    f"{', '.join(partial[name])} in this catalogue"
                )
            keep.append(tree.question(name).name)
    kept: list[Question] = []
    for q in tree.questions:  # tree order; a question whose parent question is not kept goes too
        if q.name in keep and (q.parent is None or q.parent[0] in {k.name for k in kept}):
            kept.append(q)
    if not kept or kept[0].name != tree.root.name:
        raise LabelError(
            f"{catalog.source}: tree_questions={tree_questions!r} must keep the first question "
            f"{tree.root.name!r}"
        )
    dropped = [q.name for q in tree.questions if q not in kept]
    if dropped:
        logger.info("%s: tree_questions leaves out %s", catalog.source, ", ".join(dropped))
    return DecisionTree(tree.name, tuple(kept), dict(tree.aliases))


def tree_counts(
    catalog: Catalog, tree_questions: str | Sequence[str] | None = None
) -> tuple[Any, np.ndarray, str]:
    """``(layout, counts, how)``: the vote count of every answer of ``catalog``'s tree, ``(n, A)`` floats (NaN
    where the catalogue has none), from its ``<question>_<answer>_count`` columns when every answer has one,
    else rebuilt from the within-question fractions (``how`` says which).

    ``tree_questions``: None or ``"all"`` (an error names a question with only some of its answers),
    ``"complete"`` (only the complete questions), or the questions to keep (names or a comma-separated
    string; a question whose parent question is left out goes too).
    """
    from hf_galaxy.data.tree import TreeLayout

    tree = catalog.tree if catalog.tree is not None and catalog.tree.questions else None
    if tree is None:
        raise LabelError(
            f"{catalog.source}: label_scheme='tree' needs a catalogue with a decision tree (GZ1, GZ2, Kaggle, "
            f"GZ DECaLS/DESI); the {catalog.release} catalogue has none"
        )
    layout = TreeLayout.from_tree(_tree_subset(catalog, tree_questions))
    table = catalog.table
    count_cols = [f"{name}_count" for name in layout.answer_names]
    if all(c in table.columns for c in count_cols):
        return (
            layout,
            table[count_cols].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64),
            "catalogue counts",
        )
    fractions = table[layout.answer_names].to_numpy(dtype=np.float64)
    if "nvotes" in table.columns:
        volunteers = pd.to_numeric(table["nvotes"], errors="coerce").fillna(NOMINAL_VOLUNTEERS).to_numpy()
        how = "rebuilt from the fractions and each galaxy's nvotes"
    else:
        volunteers = np.full(len(table), float(NOMINAL_VOLUNTEERS))
        how = f"rebuilt from the fractions for {NOMINAL_VOLUNTEERS} volunteers per galaxy"
    bad = np.isnan(fractions) | (fractions < 0)
    counts = layout.counts_from_fractions(np.where(bad, 0.0, fractions), volunteers).astype(np.float64)
    counts[(fractions < 0)] = -1.0  # kept visible: a negative fraction is dropped like a negative count
    return layout, counts, how


def _tree_labels(catalog: Catalog, strict: bool, tree_questions: str | Sequence[str] | None) -> Labels:
    """The ``tree`` scheme (see the module docstring)."""
    layout, counts, how = tree_counts(catalog, tree_questions)
    table = catalog.table.reset_index(drop=True)
    ids = table["id"].astype(str).to_numpy()
    keep = np.ones(len(table), dtype=bool)
    dropped: list[tuple[str, str]] = []
    reasons: dict[str, int] = {}
    finite = np.where(np.isnan(counts), 0.0, counts)
    _drop(keep, (finite < 0).any(axis=1), "vote count negative", ids, dropped, reasons, strict)
    _drop(
        keep, (np.abs(finite - np.rint(finite)) > 1e-6).any(axis=1), "vote count not an integer", ids, dropped,
        reasons, strict,
    )  # fmt: skip
    root = layout.slices()[0]
    _drop(
        keep,
        finite[:, root].sum(axis=1) <= 0,
        "no votes on the first question",
        ids,
        dropped,
        reasons,
        strict,
    )
    if not keep.any():
        detail = "; ".join(f"{r}: {k} of {len(table)} rows" for r, k in reasons.items())
        raise LabelError(f"{catalog.source}: no galaxies left after filtering ({detail})")
    logger.info("%s: tree vote counts %s", catalog.source, how)
    kept = np.rint(finite[keep]).astype(np.int64)
    tree = catalog.tree
    names = [class_name(tree, tree.root, a) for a in tree.root.answers]
    root_counts = kept[:, root].astype(np.float64)
    return Labels(
        table=table.loc[keep].reset_index(drop=True),
        labels=root_counts.argmax(axis=1).astype(np.int64),
        votes=(root_counts / root_counts.sum(axis=1, keepdims=True)).astype(np.float32),
        class_names=names,
        scheme="tree",
        question=tree.root.name,
        dropped=dropped,
        counts=reasons,
        answer_counts=kept,
        tree=layout,
    )


def _column_labels(
    catalog: Catalog,
    table: pd.DataFrame,
    col: str,
    keep: np.ndarray,
    ids: np.ndarray,
    dropped: list,
    counts: dict,
    strict: bool,
) -> tuple[np.ndarray, list[str]]:
    """Integer class indices (-1 = invalid) and class names of a ready label column."""
    if col not in table.columns:
        raise LabelError(
            f"{catalog.source}: label_column={col!r} is not a column; ready label columns: "
            f"{list(catalog.label_columns) or 'none'}; columns: {list(table.columns)[:30]}"
        )
    raw = table[col]
    names = list(catalog.class_names.get(col, []))
    missing = raw.isna().to_numpy()
    _drop(keep, missing, f"label column {col!r} is empty", ids, dropped, counts, strict)
    values = np.full(len(raw), -1, dtype=np.int64)
    numeric = pd.to_numeric(raw, errors="coerce")
    if names and numeric.notna().sum() == (~missing).sum():
        v = numeric.to_numpy()
        ok = ~missing & (v >= 0) & (v < len(names)) & (v == np.round(v))
        values[ok] = v[ok].astype(np.int64)
    else:
        if not names:
            names = sorted({str(x) for x in raw[~missing]})
        index = {nm: i for i, nm in enumerate(names)}
        values = np.array(
            [index.get(str(x), -1) if not m else -1 for x, m in zip(raw, missing)], dtype=np.int64
        )
    _drop(
        keep,
        (values < 0) & ~missing,
        f"label column {col!r} value not among the class names {names}",
        ids,
        dropped,
        counts,
        strict,
    )
    return values, [str(n).replace("-", "_").replace(" ", "_").lower() for n in names]


def parse_classes(value: str | None) -> str | list[str] | dict[str, list[str]] | None:
    """``--classes``: None, a JSON mapping, a preset name or a comma-separated list."""
    if value is None:
        return None
    value = value.strip()
    if value.startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"--classes: invalid JSON mapping ({err}): {value!r}") from err
    if "," in value:
        return [v.strip() for v in value.split(",") if v.strip()]
    return value if value in CLASS_PRESETS else [value]
