"""The flat layout of a Galaxy Zoo decision tree, shared by whole-tree datasets, models, losses and metrics.

A whole-tree model predicts one block of outputs per question, all questions side by side: answer ``k`` of the
flattened vector is :attr:`TreeLayout.answer_names` ``[k]`` (``question_answer``), and
:meth:`TreeLayout.slices` gives each question's block. The layout is plain data (:meth:`TreeLayout.to_dict`), so
it can live in a model's ``config.json`` and be restored by ``from_pretrained`` without ``trust_remote_code``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hf_galaxy.data.catalogs.base import DecisionTree

#: the ``config.json`` attribute that holds a whole-tree model's layout (and its ``loss``)
TREE_CONFIG_KEY = "galaxy_zoo_tree"
#: what a whole-tree model's outputs are: Dirichlet concentration logits, or per-question softmax logits
TREE_LOSSES = ("dirichlet", "soft_ce")


@dataclass(frozen=True)
class TreeLayout:
    """Questions, their answers and the (question, answer) that leads to each, in output order.

    A parent answer written ``"!answer"`` means any answer of the parent question but that one (GZ2 asks
    "anything odd?" on every path except star/artifact).
    """

    name: str
    questions: tuple[str, ...]
    answers: tuple[tuple[str, ...], ...]
    parents: tuple[tuple[str, str] | None, ...]

    def __post_init__(self) -> None:
        if not (len(self.questions) == len(self.answers) == len(self.parents)) or not self.questions:
            raise ValueError(
                f"tree {self.name!r}: questions, answers and parents must be non-empty and aligned"
            )
        for q, answers in zip(self.questions, self.answers):
            if len(answers) < 2:
                raise ValueError(
                    f"tree {self.name!r}: question {q!r} needs at least two answers, got {answers}"
                )
        index = {q: i for i, q in enumerate(self.questions)}
        for q, parent in zip(self.questions, self.parents):
            if parent is None:
                continue
            pq, pa = parent
            if pq not in index or pa.lstrip("!") not in self.answers[index[pq]]:
                raise ValueError(f"tree {self.name!r}: question {q!r} has an unknown parent answer {pq}/{pa}")
            if index[pq] >= index[q]:
                raise ValueError(f"tree {self.name!r}: question {q!r} comes before its parent {pq!r}")

    @classmethod
    def from_tree(cls, tree: DecisionTree) -> TreeLayout:
        """The layout of a :class:`~hf_galaxy.data.catalogs.base.DecisionTree` (questions in tree order)."""
        return cls(
            tree.name,
            tuple(q.name for q in tree.questions),
            tuple(tuple(q.answers) for q in tree.questions),
            tuple(q.parent for q in tree.questions),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for ``config.json`` and the dataset facts)."""
        return {
            "name": self.name,
            "questions": [
                {"name": q, "answers": list(a), "parent": list(p) if p else None}
                for q, a, p in zip(self.questions, self.answers, self.parents)
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TreeLayout:
        """Inverse of :meth:`to_dict`; the errors name what is missing."""
        try:
            questions = list(data["questions"])
            return cls(
                str(data.get("name", "tree")),
                tuple(str(q["name"]) for q in questions),
                tuple(tuple(str(a) for a in q["answers"]) for q in questions),
                tuple(tuple(q["parent"]) if q.get("parent") else None for q in questions),
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a decision-tree layout (expected name and questions): {err}") from err

    # ---- the flat vector
    @property
    def n_answers(self) -> int:
        return sum(len(a) for a in self.answers)

    @property
    def answer_names(self) -> list[str]:
        """``question_answer`` for every output, in order."""
        return [f"{q}_{a}" for q, answers in zip(self.questions, self.answers) for a in answers]

    def slices(self) -> list[slice]:
        """Each question's block of the flat vector."""
        out, start = [], 0
        for answers in self.answers:
            out.append(slice(start, start + len(answers)))
            start += len(answers)
        return out

    def answer_index(self, question: str, answer: str) -> int:
        """Position of ``question``'s ``answer`` in the flat vector."""
        q = self.questions.index(question)
        return self.slices()[q].start + self.answers[q].index(answer)

    # ---- vote maths
    def totals(self, counts: np.ndarray) -> np.ndarray:
        """``(n, Q)`` votes per question from ``(n, A)`` answer counts."""
        counts = np.asarray(counts, dtype=np.float64)
        return np.stack([counts[:, s].sum(axis=1) for s in self.slices()], axis=1)

    def fractions(self, counts: np.ndarray) -> np.ndarray:
        """``(n, A)`` vote fractions within each question; NaN for a question nobody answered."""
        counts = np.asarray(counts, dtype=np.float64)
        out = np.full_like(counts, np.nan)
        for s in self.slices():
            total = counts[:, s].sum(axis=1, keepdims=True)
            np.divide(counts[:, s], total, out=out[:, s], where=total > 0)
        return out

    def reach(self, fractions: np.ndarray, unscaled: Sequence[str] = ()) -> np.ndarray:
        """``(n, Q)`` expected share of volunteers who reach each question: the product of the parent answers'
        fractions up the tree (a NaN parent fraction counts as 0). Questions in ``unscaled`` reach 1 (the
        Kaggle targets do not scale "anything odd?")."""
        fractions = np.nan_to_num(np.asarray(fractions, dtype=np.float64), nan=0.0)
        index = {q: i for i, q in enumerate(self.questions)}
        reach = np.ones((len(fractions), len(self.questions)))
        for i, (q, parent) in enumerate(
            zip(self.questions, self.parents)
        ):  # parents come first in tree order
            if parent is None or q in unscaled:
                continue
            pq, pa = parent
            p = index[pq]
            if pa.startswith("!"):
                share = 1.0 - fractions[:, self.answer_index(pq, pa[1:])]
            else:
                share = fractions[:, self.answer_index(pq, pa)]
            reach[:, i] = reach[:, p] * share
        return reach

    def weighted(self, fractions: np.ndarray, unscaled: Sequence[str] = ()) -> np.ndarray:
        """Tree-weighted fractions (the Kaggle targets): each answer's fraction times its question's reach."""
        fractions = np.asarray(fractions, dtype=np.float64)
        reach = self.reach(fractions, unscaled)
        out = np.nan_to_num(fractions, nan=0.0).copy()
        for i, s in enumerate(self.slices()):
            out[:, s] *= reach[:, i : i + 1]
        return out

    def counts_from_fractions(self, fractions: np.ndarray, n_volunteers: np.ndarray | float) -> np.ndarray:
        """Integer counts that reproduce within-question ``fractions`` for ``n_volunteers`` per galaxy, each
        question getting the volunteers who reach it (rounded; the Kaggle release has fractions only)."""
        fractions = np.nan_to_num(np.asarray(fractions, dtype=np.float64), nan=0.0)
        n = np.broadcast_to(np.asarray(n_volunteers, dtype=np.float64).reshape(-1, 1), (len(fractions), 1))
        reached = np.rint(n * self.reach(fractions))
        out = np.zeros_like(fractions)
        for i, s in enumerate(self.slices()):
            out[:, s] = np.rint(fractions[:, s] * reached[:, i : i + 1])
        return out.astype(np.int64)


def tree_layout_of(config: Any) -> TreeLayout | None:
    """The layout stored in a model config (``config.galaxy_zoo_tree``), or None for a one-question model."""
    data = getattr(config, TREE_CONFIG_KEY, None)
    return TreeLayout.from_dict(data) if isinstance(data, Mapping) else None


def tree_loss_of(config: Any) -> str:
    """How a whole-tree model's outputs turn into fractions: the ``loss`` it was trained with (see
    :data:`TREE_LOSSES`; ``dirichlet`` when the config does not say)."""
    data = getattr(config, TREE_CONFIG_KEY, None) or {}
    loss = str(data.get("loss", "dirichlet"))
    if loss not in TREE_LOSSES:
        raise ValueError(f"config.{TREE_CONFIG_KEY}['loss'] is {loss!r}; expected one of {TREE_LOSSES}")
    return loss


def set_tree_config(config: Any, layout: TreeLayout, loss: str) -> None:
    """Record ``layout`` and ``loss`` in a model config, with ``id2label`` naming every answer, so that
    ``from_pretrained`` restores a whole-tree model without ``trust_remote_code``."""
    if loss not in TREE_LOSSES:
        raise ValueError(f"tree loss must be one of {TREE_LOSSES}, got {loss!r}")
    names = layout.answer_names
    if int(getattr(config, "num_labels", len(names))) != len(names):
        raise ValueError(
            f"the model has {config.num_labels} outputs; the tree {layout.name!r} has {len(names)}"
        )
    setattr(config, TREE_CONFIG_KEY, {**layout.to_dict(), "loss": loss})
    config.id2label = dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}
