"""Whole-tree volunteer votes for the synthetic Galaxy Zoo (:func:`hf_galaxy.data.synthetic.make_galaxy_zoo`).

With ``make_galaxy_zoo(..., tree="decals")`` (GZD-5 tree, :data:`~hf_galaxy.data.catalogs.trees.GZD5_TREE`) or
``tree="gz2"`` (:data:`~hf_galaxy.data.catalogs.trees.GZ2_TREE`) the same galaxies and images get a second
catalogue with the vote *counts* of every answer of that tree, in the layout of the real release:

``catalog_decals.csv`` (read by :mod:`hf_galaxy.data.catalogs.decals`)
    ``iauname`` (a J-name from the position, ``Jhhmmss.ss+ddmmss.s``), ``objid`` (the GZ1 ``OBJID``), ``ra``,
    ``dec`` (decimal degrees), ``file_loc`` (``images/<OBJID>.jpg``, relative to the output folder), then per
    question ``q`` and answer ``a``: ``{q}_{a}`` (count), ``{q}_{a}_fraction`` (empty where nobody answered)
    and ``{q}_total-votes``.
``catalog_gz2.csv`` (read by :mod:`hf_galaxy.data.catalogs.gz2`, the galaxy-datasets "ortho" layout)
    ``id_str`` and ``dr7objid`` (the GZ1 ``OBJID``), ``ra``, ``dec``, ``file_loc``, then ``{q}-gz2_{a}``,
    ``{q}-gz2_{a}_fraction`` and ``{q}-gz2_total-votes``. As in galaxy-datasets, task 08 (``odd-feature``) is
    not in this layout (its votes are simulated, and its truth is in the truth file).
``truth_decals.csv`` / ``truth_gz2.csv``
    The catalogue's id column, ``OBJID``, ``true_class`` (the GZ1 class), one column per question holding
    the true answer where the galaxy's true morphology reaches that question (empty where it does not),
    and the drawn parameters behind them: ``clarity``, ``arms``, ``pitch_deg``, ``bulge_to_total``,
    ``axis_ratio`` (empty where the class has none).

True answers
------------
From the parameters the renderer drew (:func:`~hf_galaxy.data.synthetic.sample_galaxy_params`). ``B/T`` is
the bulge-to-total flux of the two Sersic components (the renderer's bulges are compact: B/T is 0.1-20%,
median 1.5%, so the thresholds sit on that scale).

====================  ======================================================================================
question              true answer
====================  ======================================================================================
smooth-or-featured    elliptical, faint blob (``star_or_unknown`` drawn as a blob): smooth; spirals, edge-on,
                      merger: featured-or-disk; star: artifact
disk-edge-on          edge_on: yes; others: no
has-spiral-arms       spirals: yes; others: no
bar                   no (the renderer draws no bars; volunteers still give noise votes)
bulge-size            spirals, edge-on: B/T < 0.4% none, < 1.5% small, < 4% moderate, < 10% large, else
                      dominant (GZ2: no / just-noticeable / obvious (moderate, large) / dominant);
                      merger: primary's Sersic n < 2 small, < 3 moderate, else large; elliptical: dominant
how-rounded           axis ratio q >= 0.8 round, >= 0.6 in-between, else cigar-shaped (GZ2: cigar);
                      ellipticals and blobs use their q, spirals their disk's, mergers the primary's,
                      edge-on disks are cigar-shaped
edge-on-bulge         edge_on: B/T >= 1% rounded, else none (boxy is never drawn); GZ2 bulge-shape:
                      round / no-bulge
spiral-winding        pitch angle < 16.5 deg tight, < 20.5 deg medium, else loose
spiral-arm-count      the drawn number of arms (2, 3 or 4)
merging (GZD-5)       merger: merger; others: none
something-odd (GZ2)   merger, or edge_on with a dust lane: yes; others: no
odd-feature (GZ2)     merger: merger; edge-on with a dust lane: dust-lane
====================  ======================================================================================

A question the true morphology does not reach still has an implied answer (an elliptical has no arms, so
"has-spiral-arms" is "no" for the few volunteers who call it featured; arm count "cant-tell"), answered with
less agreement; it is empty in the truth file.

Votes
-----
Each galaxy gets ``V`` volunteers (GZD-5: lognormal, median 38, 10-60; GZ2: median 44, 20-80). Every question
has a per-galaxy answer distribution: the true (or implied) answer has a mean share ``lo + (hi - lo) *
clarity`` (``lo``/``hi`` per question in :data:`QUESTION_SHARES`; a third of the clarity where the question is
not on the true path), 60% of the rest goes to one rival answer drawn per galaxy (neighbouring answers of
ordered questions such as bulge size or arm count are the likely rivals) and 40% is spread; the
probabilities are drawn from a Dirichlet whose concentration varies per galaxy (5-80). Volunteers walk the
tree: the root question (and GZD-5's "merging", which has no parent) get all ``V`` answers as a multinomial,
and each other question gets exactly the volunteers whose answer led there (the parent answer's count, or
for GZ2's "anything odd?" every root answer but artifact), so ``{q}_total-votes`` always equals the parent
answer's count and deep questions get few or no votes.

The draws use their own seed stream (``SeedSequence(seed, spawn_key=(i, 4))``), so the GZ1 catalogue, images
and truth are byte-identical with and without ``tree``, and galaxy ``i``'s tree votes do not depend on ``n``,
``image_size`` or ``num_proc``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import gamma as gamma_fn
from scipy.special import gammaincinv

from hf_galaxy.data.catalogs.base import DecisionTree, Question
from hf_galaxy.data.catalogs.trees import GZ2_TREE, GZD5_TREE
from hf_galaxy.data.tree import TreeLayout

__all__ = [
    "QUESTION_SHARES",
    "TREE_CHOICES",
    "TreeRelease",
    "bulge_to_total",
    "check_tree",
    "implied_answers",
    "simulate_tree_votes",
    "true_answers",
    "tree_file_names",
    "tree_release",
    "write_tree_release",
]


@dataclass(frozen=True)
class TreeRelease:
    """How one tree's catalogue is laid out and named."""

    name: str
    tree: DecisionTree
    catalog_name: str
    truth_name: str
    id_column: str
    objid_column: str
    suffix: str  # between question and answer: "" (GZ DECaLS) or "-gz2" (galaxy-datasets GZ2)
    omitted: tuple[str, ...]  # questions simulated but not written (absent from the real layout)
    volunteers: tuple[float, float, int, int]  # lognormal median, sigma, min, max

    def written_questions(self) -> list[Question]:
        """The tree's questions that the catalogue holds, in tree order."""
        return [q for q in self.tree.questions if q.name not in self.omitted]


_RELEASES: dict[str, TreeRelease] = {
    "decals": TreeRelease(
        "decals", GZD5_TREE, "catalog_decals.csv", "truth_decals.csv", "iauname", "objid", "", (),
        (38.0, 0.35, 10, 60),
    ),
    "gz2": TreeRelease(
        "gz2", GZ2_TREE, "catalog_gz2.csv", "truth_gz2.csv", "id_str", "dr7objid", "-gz2", ("odd-feature",),
        (44.0, 0.30, 20, 80),
    ),
}  # fmt: skip
TREE_CHOICES: tuple[str, ...] = tuple(_RELEASES)
"""Valid ``tree=`` values of :func:`~hf_galaxy.data.synthetic.make_galaxy_zoo`."""

#: (lo, hi): mean vote share of the true answer at clarity 0 and 1
QUESTION_SHARES: dict[str, tuple[float, float]] = {
    "smooth-or-featured": (0.50, 0.95),
    "disk-edge-on": (0.55, 0.97),
    "has-spiral-arms": (0.55, 0.95),
    "bar": (0.60, 0.92),
    "bulge-size": (0.35, 0.75),
    "how-rounded": (0.40, 0.85),
    "edge-on-bulge": (0.40, 0.80),
    "bulge-shape": (0.40, 0.80),
    "spiral-winding": (0.35, 0.80),
    "spiral-arm-count": (0.40, 0.90),
    "merging": (0.50, 0.95),
    "something-odd": (0.55, 0.92),
    "odd-feature": (0.40, 0.85),
}
#: questions whose answers are ordered (in tree order), so neighbours are the likely confusions
_ORDERED = {"bar", "bulge-size", "how-rounded", "spiral-winding", "spiral-arm-count", "merging"}
_UNSURE = ("cant-tell",)  # answers that collect a fixed share of the doubt in ordered questions
#: explicit confusions (true answer -> weights of the other answers)
_CONFUSION: dict[str, dict[str, dict[str, float]]] = {
    "smooth-or-featured": {
        "smooth": {"featured-or-disk": 0.8, "artifact": 0.2},
        "featured-or-disk": {"smooth": 0.85, "artifact": 0.15},
        "artifact": {"smooth": 0.6, "featured-or-disk": 0.4},
    },
    "odd-feature": {
        "merger": {"disturbed": 0.35, "irregular": 0.25, "other": 0.2, "ring": 0.05, "lens-or-arc": 0.05,
                   "dust-lane": 0.1},
        "dust-lane": {"other": 0.4, "disturbed": 0.15, "lens-or-arc": 0.2, "irregular": 0.1, "ring": 0.1,
                      "merger": 0.05},
    },
}  # fmt: skip
_CONCENTRATION = (5.0, 80.0)
_UNREACHED_CLARITY = 1.0 / 3.0

_GZ2_NAMES: dict[str, dict[str, str]] = {
    "bulge-size": {
        "none": "no",
        "small": "just-noticeable",
        "moderate": "obvious",
        "large": "obvious",
        "dominant": "dominant",
    },
    "how-rounded": {"cigar-shaped": "cigar"},
    "bulge-shape": {"rounded": "round", "none": "no-bulge"},
}


def check_tree(tree: str | None) -> TreeRelease | None:
    """The release of ``tree`` (None for None); a one-line ValueError names the valid values."""
    if tree is None:
        return None
    if not isinstance(tree, str) or tree not in _RELEASES:
        raise ValueError(f"tree must be None or one of {', '.join(map(repr, TREE_CHOICES))}, got {tree!r}")
    return _RELEASES[tree]


def tree_release(tree: str) -> TreeRelease:
    """The layout of ``tree`` (``"decals"`` or ``"gz2"``)."""
    release = check_tree(tree)
    assert release is not None
    return release


# --------------------------------------------------------------------------------------------------
# True morphology
# --------------------------------------------------------------------------------------------------


def _bn(n: float) -> float:
    return float(gammaincinv(2.0 * n, 0.5))


def _sersic_flux(amplitude: float, r_eff: float, n: float, q: float) -> float:
    b = _bn(n)
    return (
        2.0
        * math.pi
        * n
        * amplitude
        * r_eff**2
        * q
        * math.exp(b)
        * b ** (-2.0 * n)
        * float(gamma_fn(2.0 * n))
    )


def bulge_to_total(params: Mapping[str, Any]) -> float:
    """Bulge-to-total flux of a spiral or edge-on galaxy's parameters."""
    bulge = _sersic_flux(
        params["bulge_amplitude"], params["bulge_r_eff"], params["bulge_n"], params["bulge_q"]
    )
    disk = _sersic_flux(params["amplitude"], params["r_eff"], 1.0, params["q"])
    return bulge / (bulge + disk)


def _bulge_level(bt: float) -> str:
    for limit, level in ((0.004, "none"), (0.015, "small"), (0.04, "moderate"), (0.10, "large")):
        if bt < limit:
            return level
    return "dominant"


def _roundness(q: float) -> str:
    return "round" if q >= 0.8 else "in-between" if q >= 0.6 else "cigar-shaped"


def _winding(pitch_deg: float) -> str:
    return "tight" if pitch_deg < 16.5 else "medium" if pitch_deg < 20.5 else "loose"


def _morphology(cls: str, params: Mapping[str, Any]) -> dict[str, str]:
    """Implied answers in GZD-5 vocabulary (plus ``something-odd`` / ``odd-feature``) for every question."""
    m = {
        "smooth-or-featured": "featured-or-disk",
        "disk-edge-on": "no",
        "has-spiral-arms": "no",
        "bar": "no",
        "bulge-size": "small",
        "how-rounded": "round",
        "edge-on-bulge": "rounded",
        "spiral-winding": "medium",
        "spiral-arm-count": "cant-tell",
        "merging": "none",
        "something-odd": "no",
        "odd-feature": "other",
    }
    if cls == "elliptical":
        m.update(
            {"smooth-or-featured": "smooth", "bulge-size": "dominant", "how-rounded": _roundness(params["q"])}
        )
    elif cls in ("clockwise_spiral", "anticlockwise_spiral"):
        m.update(
            {
                "has-spiral-arms": "yes",
                "bulge-size": _bulge_level(bulge_to_total(params)),
                "how-rounded": _roundness(params["q"]),
                "spiral-winding": _winding(params["pitch_deg"]),
                "spiral-arm-count": str(int(params["arms"])),
            }
        )
    elif cls == "edge_on":
        bt = bulge_to_total(params)
        m.update(
            {
                "disk-edge-on": "yes",
                "bulge-size": _bulge_level(bt),
                "how-rounded": "cigar-shaped",
                "edge-on-bulge": "rounded" if bt >= 0.01 else "none",
            }
        )
        if params["dust_depth"] > 0:
            m.update({"something-odd": "yes", "odd-feature": "dust-lane"})
    elif cls == "merger":
        primary = params["galaxies"][0]
        n = primary["n"]
        m.update(
            {
                "bulge-size": "small" if n < 2 else "moderate" if n < 3 else "large",
                "how-rounded": _roundness(primary["q"]),
                "merging": "merger",
                "something-odd": "yes",
                "odd-feature": "merger",
            }
        )
    elif params.get("kind") == "star":
        m.update({"smooth-or-featured": "artifact", "bulge-size": "none"})
    else:  # a faint featureless blob
        m.update(
            {"smooth-or-featured": "smooth", "bulge-size": "none", "how-rounded": _roundness(params["q"])}
        )
    return m


def implied_answers(tree: str, cls: str, params: Mapping[str, Any]) -> dict[str, str]:
    """The answer the true morphology implies for every question of ``tree``, reached or not."""
    release = tree_release(tree)
    m = _morphology(cls, params)
    if release.name == "gz2":
        m["bulge-shape"] = m["edge-on-bulge"]
        for q, names in _GZ2_NAMES.items():
            m[q] = names.get(m[q], m[q])
    out = {q.name: m[q.name] for q in release.tree.questions}
    for q in release.tree.questions:
        if out[q.name] not in q.answers:  # a bug in the tables above, never the user's input
            raise AssertionError(f"{tree}: implied answer {out[q.name]!r} is not an answer of {q.name!r}")
    return out


def _follows(parent_answer: str, answer: str) -> bool:
    """Whether ``answer`` of the parent question leads to the child (``"!x"``: any answer but x)."""
    return answer != parent_answer[1:] if parent_answer.startswith("!") else answer == parent_answer


def _reached(tree: DecisionTree, answers: Mapping[str, str]) -> dict[str, bool]:
    reached: dict[str, bool] = {}
    for q in tree.questions:  # parents come first in tree order
        if q.parent is None:
            reached[q.name] = True
        else:
            pq, pa = q.parent
            reached[q.name] = reached[pq] and _follows(pa, answers[pq])
    return reached


def true_answers(tree: str, cls: str, params: Mapping[str, Any]) -> dict[str, str]:
    """Per question of ``tree``: the true answer, or ``""`` where the true morphology does not reach it."""
    release = tree_release(tree)
    implied = implied_answers(tree, cls, params)
    reached = _reached(release.tree, implied)
    return {q: a if reached[q] else "" for q, a in implied.items()}


# --------------------------------------------------------------------------------------------------
# Votes
# --------------------------------------------------------------------------------------------------


def _doubt(question: str, answers: Sequence[str], true: int) -> np.ndarray:
    """Relative weights of the wrong answers (0 for the true one)."""
    k = len(answers)
    rows = _CONFUSION.get(question, {})
    if answers[true] in rows:
        w = np.array([rows[answers[true]].get(a, 0.0) for a in answers])
    elif question in _ORDERED:
        ordered = [i for i, a in enumerate(answers) if a not in _UNSURE]
        w = np.zeros(k)
        pos = ordered.index(true) if true in ordered else None
        for rank, i in enumerate(ordered):
            w[i] = 0.25 if pos is None else math.exp(-abs(rank - pos))
        for i, a in enumerate(answers):
            if a in _UNSURE:
                w[i] = 0.3
    else:
        w = np.ones(k)
    w[true] = 0.0
    return w / w.sum()


def simulate_tree_votes(
    tree: str, cls: str, params: Mapping[str, Any], rng: np.random.Generator
) -> tuple[int, np.ndarray]:
    """``(volunteers, counts)``: simulated votes of every answer of ``tree`` (``TreeLayout.from_tree`` order).

    See the module docstring: per-question Dirichlet answer probabilities around the true (or implied)
    answer, a lognormal number of volunteers, and multinomials down the tree so that every question gets
    exactly the volunteers whose answers led there.
    """
    release = tree_release(tree)
    clarity = float(params["clarity"])
    implied = implied_answers(tree, cls, params)
    reached = _reached(release.tree, implied)
    layout = TreeLayout.from_tree(release.tree)
    median, sigma, lo, hi = release.volunteers
    volunteers = int(np.clip(round(float(rng.lognormal(math.log(median), sigma))), lo, hi))
    concentration = float(np.exp(rng.uniform(*np.log(_CONCENTRATION))))
    counts = np.zeros(layout.n_answers, dtype=np.int64)
    slices = dict(zip(layout.questions, layout.slices()))
    for q in release.tree.questions:
        answers = tuple(q.answers)
        true = answers.index(implied[q.name])
        c = clarity if reached[q.name] else clarity * _UNREACHED_CLARITY
        share_lo, share_hi = QUESTION_SHARES[q.name]
        share = share_lo + (share_hi - share_lo) * c
        doubt = _doubt(q.name, answers, true)
        rival = int(rng.choice(len(answers), p=doubt))
        mean = (1.0 - share) * 0.4 * doubt
        mean[rival] += (1.0 - share) * 0.6
        mean[true] = share
        probs = rng.dirichlet(np.maximum(concentration * mean, 1e-3))
        if q.parent is None:
            total = volunteers
        else:
            pq, pa = q.parent
            parent = release.tree.question(pq)
            block = counts[slices[pq]]
            if pa.startswith("!"):
                total = int(block.sum() - block[parent.answers.index(pa[1:])])
            else:
                total = int(block[parent.answers.index(pa)])
        counts[slices[q.name]] = rng.multinomial(total, probs)
    return volunteers, counts


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def _iau_name(ra: float, dec: float) -> str:
    """``Jhhmmss.ss+ddmmss.s`` (truncated, as IAU names are)."""
    cs = int(math.floor(ra / 15.0 * 360000.0)) % (24 * 360000)  # centiseconds of time
    h, rem = divmod(cs, 360000)
    m, s = divmod(rem, 6000)
    ds = int(math.floor(abs(dec) * 36000.0))  # deciseconds of arc
    d, rem = divmod(ds, 36000)
    dm, dsec = divmod(rem, 600)
    sign = "-" if dec < 0 else "+"
    return f"J{h:02d}{m:02d}{s // 100:02d}.{s % 100:02d}{sign}{d:02d}{dm:02d}{dsec // 10:02d}.{dsec % 10}"


def _fraction(count: int, total: int) -> str:
    return repr(round(count / total, 6)) if total > 0 else ""


def _param_columns(cls: str, params: Mapping[str, Any]) -> list[str]:
    """``clarity, arms, pitch_deg, bulge_to_total, axis_ratio`` of the truth file (empty where none)."""
    arms = pitch = bt = q = ""
    if cls in ("clockwise_spiral", "anticlockwise_spiral"):
        arms, pitch = str(int(params["arms"])), f"{params['pitch_deg']:.3f}"
        bt, q = f"{bulge_to_total(params):.5f}", f"{params['q']:.4f}"
    elif cls == "edge_on":
        bt, q = f"{bulge_to_total(params):.5f}", f"{params['q']:.4f}"
    elif cls == "merger":
        q = f"{params['galaxies'][0]['q']:.4f}"
    elif "q" in params:
        q = f"{params['q']:.4f}"
    return [f"{params['clarity']:.4f}", arms, pitch, bt, q]


def write_tree_release(
    out_dir: Path,
    tree: str,
    galaxies: Sequence[tuple[int, str, Mapping[str, Any], np.random.Generator]],
    ra: np.ndarray,
    dec: np.ndarray,
    image_dir_name: str = "images",
) -> tuple[Path, Path]:
    """Write ``tree``'s catalogue and truth file for ``galaxies`` (``(objid, class, params, rng)`` per galaxy,
    ``rng`` the galaxy's tree-vote stream); return their paths."""
    release = tree_release(tree)
    layout = TreeLayout.from_tree(release.tree)
    slices = dict(zip(layout.questions, layout.slices()))
    written = release.written_questions()
    sfx = release.suffix
    header = [release.id_column, release.objid_column, "ra", "dec", "file_loc"]
    for q in written:
        for a in q.answers:
            header += [f"{q.name}{sfx}_{a}", f"{q.name}{sfx}_{a}_fraction"]
        header.append(f"{q.name}{sfx}_total-votes")
    truth_header = [
        release.id_column, "OBJID", "true_class", *(q.name for q in release.tree.questions),
        "clarity", "arms", "pitch_deg", "bulge_to_total", "axis_ratio",
    ]  # fmt: skip

    rows: list[list[str]] = []
    truth_rows: list[list[str]] = []
    seen: set[str] = set()
    for i, (objid, cls, params, rng) in enumerate(galaxies):
        if release.id_column == "iauname":
            gid = base = _iau_name(float(ra[i]), float(dec[i]))
            k = 1
            while gid in seen:  # two galaxies within 0.15" (never in practice): keep the ids unique
                k += 1
                gid = f"{base}_{k}"
        else:
            gid = str(objid)
        seen.add(gid)
        _, counts = simulate_tree_votes(tree, cls, params, rng)
        row = [gid, str(objid), f"{ra[i]:.6f}", f"{dec[i]:.6f}", f"{image_dir_name}/{objid}.jpg"]
        for q in written:
            block = counts[slices[q.name]]
            total = int(block.sum())
            for c in block:
                row += [str(int(c)), _fraction(int(c), total)]
            row.append(str(total))
        rows.append(row)
        truth = true_answers(tree, cls, params)
        truth_rows.append(
            [
                gid,
                str(objid),
                cls,
                *(truth[q.name] for q in release.tree.questions),
                *_param_columns(cls, params),
            ]
        )

    catalog_path = out_dir / release.catalog_name
    truth_path = out_dir / release.truth_name
    for path, head, body in ((truth_path, truth_header, truth_rows), (catalog_path, header, rows)):
        with path.open("w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(head)
            writer.writerows(body)
    return catalog_path, truth_path


def tree_file_names() -> list[str]:
    """Every file name this module may write (so a regenerated folder can drop a previous tree's files)."""
    return [name for r in _RELEASES.values() for name in (r.catalog_name, r.truth_name)]
