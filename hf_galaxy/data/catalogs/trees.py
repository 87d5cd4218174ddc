"""Galaxy Zoo decision trees and the native column names of each release.

The question/answer slugs follow the galaxy-datasets "ortho" schema without the campaign suffix
(``smooth-or-featured_smooth`` rather than ``t01_smooth_or_features_a01_smooth`` or ``Class1.1``).
Native names (GZ2 task prefixes, Kaggle ``ClassN``, galaxy-datasets ``-gz2``/``-dr5``/``-dr8``/``-dr12``
suffixes) are aliases, so ``tree.question("t04_spiral")`` and ``tree.question("Class4")`` both return
``has-spiral-arms``.
"""

from __future__ import annotations

from collections.abc import Sequence

from hf_galaxy.data.catalogs.base import CatalogError, DecisionTree, Question

# --------------------------------------------------------------------------------------------- GZ1

GZ1_CLASSES: tuple[str, ...] = (
    "elliptical",
    "clockwise_spiral",
    "anticlockwise_spiral",
    "edge_on",
    "star_or_unknown",
    "merger",
)
"""GZ1 answers in the release's column order (P_EL, P_CW, P_ACW, P_EDGE, P_DK, P_MG)."""

GZ1_FRACTION_COLUMNS: tuple[str, ...] = ("P_EL", "P_CW", "P_ACW", "P_EDGE", "P_DK", "P_MG")

GZ1_TREE = DecisionTree(
    "gz1",
    (
        Question(
            "gz1",
            GZ1_CLASSES,
            None,
            "Elliptical, clockwise spiral, anticlockwise spiral, edge-on disk, star/don't know or merger?",
        ),
    ),
    {"gz1_main": "gz1", "main": "gz1"},
)

# ------------------------------------------------------------------------------------ GZ2 / Kaggle

#: (GZ2 task prefix, question slug, question text, [(GZ2 answer prefix, answer slug), ...], parent)
_GZ2_SPEC: tuple[tuple[str, str, str, tuple[tuple[str, str], ...], tuple[str, str] | None], ...] = (
    (
        "t01_smooth_or_features",
        "smooth-or-featured",
        "Is the galaxy simply smooth and rounded, with no sign of a disk?",
        (
            ("a01_smooth", "smooth"),
            ("a02_features_or_disk", "featured-or-disk"),
            ("a03_star_or_artifact", "artifact"),
        ),
        None,
    ),
    (
        "t02_edgeon",
        "disk-edge-on",
        "Could this be a disk viewed edge-on?",
        (("a04_yes", "yes"), ("a05_no", "no")),
        ("smooth-or-featured", "featured-or-disk"),
    ),
    (
        "t03_bar",
        "bar",
        "Is there a sign of a bar feature through the centre of the galaxy?",
        (("a06_bar", "yes"), ("a07_no_bar", "no")),
        ("disk-edge-on", "no"),
    ),
    (
        "t04_spiral",
        "has-spiral-arms",
        "Is there any sign of a spiral arm pattern?",
        (("a08_spiral", "yes"), ("a09_no_spiral", "no")),
        ("disk-edge-on", "no"),
    ),
    (
        "t05_bulge_prominence",
        "bulge-size",
        "How prominent is the central bulge?",
        (
            ("a10_no_bulge", "no"),
            ("a11_just_noticeable", "just-noticeable"),
            ("a12_obvious", "obvious"),
            ("a13_dominant", "dominant"),
        ),
        ("disk-edge-on", "no"),
    ),
    (
        "t06_odd",
        "something-odd",
        "Is there anything odd?",
        (("a14_yes", "yes"), ("a15_no", "no")),
        ("smooth-or-featured", "!artifact"),  # every path but star/artifact (formats doc section 2.2)
    ),
    (
        "t07_rounded",
        "how-rounded",
        "How rounded is it?",
        (("a16_completely_round", "round"), ("a17_in_between", "in-between"), ("a18_cigar_shaped", "cigar")),
        ("smooth-or-featured", "smooth"),
    ),
    (
        "t08_odd_feature",
        "odd-feature",
        "Is the odd feature a ring, or is the galaxy disturbed or irregular?",
        (
            ("a19_ring", "ring"),
            ("a20_lens_or_arc", "lens-or-arc"),
            ("a21_disturbed", "disturbed"),
            ("a22_irregular", "irregular"),
            ("a23_other", "other"),
            ("a24_merger", "merger"),
            ("a38_dust_lane", "dust-lane"),
        ),
        ("something-odd", "yes"),
    ),
    (
        "t09_bulge_shape",
        "bulge-shape",
        "Does the galaxy have a bulge at its centre? If so, what shape?",
        (("a25_rounded", "round"), ("a26_boxy", "boxy"), ("a27_no_bulge", "no-bulge")),
        ("disk-edge-on", "yes"),
    ),
    (
        "t10_arms_winding",
        "spiral-winding",
        "How tightly wound do the spiral arms appear?",
        (("a28_tight", "tight"), ("a29_medium", "medium"), ("a30_loose", "loose")),
        ("has-spiral-arms", "yes"),
    ),
    (
        "t11_arms_number",
        "spiral-arm-count",
        "How many spiral arms are there?",
        (
            ("a31_1", "1"),
            ("a32_2", "2"),
            ("a33_3", "3"),
            ("a34_4", "4"),
            ("a36_more_than_4", "more-than-4"),
            ("a37_cant_tell", "cant-tell"),
        ),
        ("has-spiral-arms", "yes"),
    ),
)


def _gz2_aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for number, (task, slug, _text, _answers, _parent) in enumerate(_GZ2_SPEC, start=1):
        aliases[task] = slug  # t04_spiral
        aliases[task[:3]] = slug  # t04
        aliases[f"Class{number}"] = slug  # Class4 (Kaggle)
        aliases[f"Q{number}"] = slug  # Q4 (Kaggle decision-tree page)
        aliases[f"{slug}-gz2"] = slug  # galaxy-datasets ortho name
    return aliases


GZ2_TREE = DecisionTree(
    "gz2",
    tuple(
        Question(slug, tuple(a for _, a in answers), parent, text)
        for _task, slug, text, answers, parent in _GZ2_SPEC
    ),
    _gz2_aliases(),
)
"""The GZ2 decision tree (Willett et al. 2013), also used by the Kaggle Galaxy Challenge.

Task 06 ("anything odd?") is asked on every path except star/artifact: its parent is written
``("smooth-or-featured", "!artifact")`` (any answer but artifact).
"""

GZ2_NATIVE: tuple[tuple[str, str, str], ...] = tuple(
    (f"{task}_{prefix}", slug, answer)
    for task, slug, _text, answers, _parent in _GZ2_SPEC
    for prefix, answer in answers
)
"""(GZ2 answer column prefix, question, answer) for the 37 answers, in release column order."""

KAGGLE_NATIVE: tuple[tuple[str, str, str], ...] = tuple(
    (f"Class{q}.{a}", slug, answer)
    for q, (_task, slug, _text, answers, _parent) in enumerate(_GZ2_SPEC, start=1)
    for a, (_prefix, answer) in enumerate(answers, start=1)
)
"""(Kaggle column, question, answer) for the 37 ``ClassN.M`` columns, in release column order."""

KAGGLE_PARENT_COLUMN: dict[str, str | None] = {
    "smooth-or-featured": None,
    "disk-edge-on": "Class1.2",
    "bar": "Class2.2",
    "has-spiral-arms": "Class2.2",
    "bulge-size": "Class2.2",
    "something-odd": None,  # Q6 sums to 1, not to 1 - Class1.3 (formats doc section 3.3)
    "how-rounded": "Class1.1",
    "odd-feature": "Class6.1",
    "bulge-shape": "Class2.1",
    "spiral-winding": "Class4.1",
    "spiral-arm-count": "Class4.1",
}
"""The Kaggle column each question's answers were multiplied by (None: the question sums to 1)."""

# ----------------------------------------------------------------------------- GZ DECaLS / DESI

#: The questions GZD-5 and GZD-1/2 share word for word (the others differ in their answers).
_DECALS_TOP = (
    Question(
        "smooth-or-featured",
        ("smooth", "featured-or-disk", "artifact"),
        None,
        "Is the galaxy simply smooth and rounded, with no sign of a disk?",
    ),
    Question("disk-edge-on", ("yes", "no"), ("smooth-or-featured", "featured-or-disk"), "Edge-on disk?"),
    Question("has-spiral-arms", ("yes", "no"), ("disk-edge-on", "no"), "Spiral arms?"),
)
_DECALS_WINDING = Question(
    "spiral-winding", ("tight", "medium", "loose"), ("has-spiral-arms", "yes"), "Arm winding?"
)

GZD5_TREE = DecisionTree(
    "gzd-5",
    (
        *_DECALS_TOP,
        Question("bar", ("strong", "weak", "no"), ("disk-edge-on", "no"), "Is there a bar?"),
        Question(
            "bulge-size",
            ("dominant", "large", "moderate", "small", "none"),
            ("disk-edge-on", "no"),
            "How large is the central bulge?",
        ),
        Question(
            "how-rounded",
            ("round", "in-between", "cigar-shaped"),
            ("smooth-or-featured", "smooth"),
            "How rounded is it?",
        ),
        Question(
            "edge-on-bulge", ("boxy", "none", "rounded"), ("disk-edge-on", "yes"), "Edge-on bulge shape?"
        ),
        _DECALS_WINDING,
        Question(
            "spiral-arm-count",
            ("1", "2", "3", "4", "more-than-4", "cant-tell"),
            ("has-spiral-arms", "yes"),
            "How many spiral arms?",
        ),
        Question(
            "merging",
            ("none", "minor-disturbance", "major-disturbance", "merger"),
            None,
            "Is the galaxy merging or disturbed?",
        ),
    ),
)
"""The GZD-5 tree (Walmsley et al. 2022), also used for DECaLS DR8 / GZ DESI."""

GZD12_TREE = DecisionTree(
    "gzd-1-2",
    (
        *_DECALS_TOP,
        Question("bar", ("yes", "no"), ("disk-edge-on", "no"), "Is there a bar?"),
        Question(
            "bulge-size", ("none", "obvious", "dominant"), ("disk-edge-on", "no"), "How large is the bulge?"
        ),
        Question(
            "how-rounded",
            ("completely", "in-between", "cigar-shaped"),
            ("smooth-or-featured", "smooth"),
            "How rounded is it?",
        ),
        Question(
            "edge-on-bulge", ("rounded", "boxy", "none"), ("disk-edge-on", "yes"), "Edge-on bulge shape?"
        ),
        _DECALS_WINDING,
        Question(
            "spiral-arm-count",
            ("1", "2", "3", "4", "more-than-4"),
            ("has-spiral-arms", "yes"),
            "How many spiral arms?",
        ),
        Question(
            "merging",
            ("merger", "tidal-debris", "both", "neither"),
            None,
            "Is the galaxy merging or does it have tidal debris?",
        ),
    ),
)
"""The GZD-1/2 tree (DECaLS DR1/DR2 campaigns)."""


def _suffix_aliases(tree: DecisionTree, suffixes: tuple[str, ...]) -> DecisionTree:
    aliases = {f"{q.name}{s}": q.name for q in tree.questions for s in suffixes}
    return DecisionTree(tree.name, tree.questions, aliases)


GZD5_TREE = _suffix_aliases(GZD5_TREE, ("-dr5", "-dr8"))
GZD12_TREE = _suffix_aliases(GZD12_TREE, ("-dr12",))

DECALS_TREES: dict[str, DecisionTree] = {"gzd-5": GZD5_TREE, "gzd-1-2": GZD12_TREE}

# ------------------------------------------------------------------------- GZ Hubble / GZ CANDELS

#: (question, answers, parent (question, answer) or None, text): the trees as galaxy-datasets / Zoobot define them
#: (zoobot ``shared/label_metadata.py``: ``hubble_pairs`` / ``candels_pairs`` and their dependencies).
_HUBBLE_SPEC: tuple[tuple[str, tuple[str, ...], tuple[str, str] | None, str], ...] = (
    ("smooth-or-featured", ("smooth", "features", "artifact"), None, "Smooth, features or disk, or artifact?"),
    ("how-rounded", ("completely", "in-between", "cigar-shaped"), ("smooth-or-featured", "smooth"), "How rounded is it?"),
    ("clumpy-appearance", ("yes", "no"), ("smooth-or-featured", "features"), "Does the galaxy have a mostly clumpy appearance?"),
    ("clump-count", ("1", "2", "3", "4", "5-plus", "cant-tell"), ("clumpy-appearance", "yes"), "How many clumps?"),
    ("galaxy-symmetrical", ("yes", "no"), ("clumpy-appearance", "yes"), "Does the galaxy appear symmetrical?"),
    ("clumps-embedded-larger-object", ("yes", "no"), ("clumpy-appearance", "yes"), "Are the clumps embedded in a larger object?"),
    ("disk-edge-on", ("yes", "no"), ("clumpy-appearance", "no"), "Edge-on disk?"),
    ("bulge-shape", ("rounded", "boxy", "none"), ("disk-edge-on", "yes"), "Edge-on bulge shape?"),
    ("bar", ("yes", "no"), ("disk-edge-on", "no"), "Is there a bar?"),
    ("has-spiral-arms", ("yes", "no"), ("disk-edge-on", "no"), "Spiral arms?"),
    ("spiral-winding", ("tight", "medium", "loose"), ("disk-edge-on", "no"), "Arm winding?"),
    ("spiral-arm-count", ("1", "2", "3", "4", "5-plus", "cant-tell"), ("disk-edge-on", "no"), "How many spiral arms?"),
    ("bulge-size", ("none", "just-noticeable", "obvious", "dominant"), ("disk-edge-on", "no"), "How prominent is the bulge?"),
)  # fmt: skip
_CANDELS_SPEC: tuple[tuple[str, tuple[str, ...], tuple[str, str] | None, str], ...] = (
    ("smooth-or-featured", ("smooth", "features", "artifact"), None, "Smooth, features or disk, or artifact?"),
    ("how-rounded", ("completely", "in-between", "cigar-shaped"), ("smooth-or-featured", "smooth"), "How rounded is it?"),
    ("clumpy-appearance", ("yes", "no"), ("smooth-or-featured", "features"), "Does the galaxy have a mostly clumpy appearance?"),
    ("clump-count", ("1", "2", "3", "4", "5-plus", "cant-tell"), ("clumpy-appearance", "yes"), "How many clumps?"),
    ("disk-edge-on", ("yes", "no"), ("clumpy-appearance", "no"), "Edge-on disk?"),
    ("edge-on-bulge", ("yes", "no"), ("disk-edge-on", "yes"), "Does the edge-on disk have a bulge?"),
    ("bar", ("yes", "no"), ("disk-edge-on", "no"), "Is there a bar?"),
    ("has-spiral-arms", ("yes", "no"), ("disk-edge-on", "no"), "Spiral arms?"),
    ("spiral-winding", ("tight", "medium", "loose"), ("disk-edge-on", "no"), "Arm winding?"),
    ("spiral-arm-count", ("1", "2", "3", "4", "5-plus", "cant-tell"), ("disk-edge-on", "no"), "How many spiral arms?"),
    ("bulge-size", ("none", "obvious", "dominant"), ("disk-edge-on", "no"), "How prominent is the bulge?"),
    ("merging", ("merger", "tidal-debris", "both", "neither"), None, "Is the galaxy merging or does it have tidal debris?"),
)  # fmt: skip


def tree_from_spec(
    name: str, spec: Sequence[tuple[str, tuple[str, ...], tuple[str, str] | None, str]]
) -> DecisionTree:
    """A :class:`DecisionTree` from ``(question, answers, parent, text)`` rows (parents before children)."""
    return DecisionTree(name, tuple(Question(q, tuple(a), p, text) for q, a, p, text in spec))


GZ_HUBBLE_TREE = tree_from_spec("gz-hubble", _HUBBLE_SPEC)
"""The GZ Hubble tree (Willett et al. 2017) in the galaxy-datasets slugs (``-hubble`` columns)."""
GZ_CANDELS_TREE = tree_from_spec("gz-candels", _CANDELS_SPEC)
"""The GZ CANDELS tree (Simmons et al. 2017) in the galaxy-datasets slugs (``-candels`` columns)."""

#: galaxy-datasets campaign suffix (``smooth-or-featured-dr5_smooth``) -> the decision tree of its votes
CAMPAIGN_TREES: dict[str, DecisionTree] = {
    "gz2": GZ2_TREE, "dr5": GZD5_TREE, "dr8": GZD5_TREE, "dr12": GZD12_TREE,
    "hubble": GZ_HUBBLE_TREE, "candels": GZ_CANDELS_TREE,
}  # fmt: skip


def union_tree(campaigns: Sequence[str], name: str = "gz-evo") -> DecisionTree:
    """The decision tree of several campaigns' votes side by side (GZ Evo, Walmsley et al. 2024): every
    question of each campaign's tree, named ``<question>-<campaign>`` as in galaxy-datasets, with its parent
    renamed alike. A galaxy shown in one campaign has no votes for the others' questions."""
    questions = []
    for c in campaigns:
        for q in CAMPAIGN_TREES[c].questions:
            parent = (f"{q.parent[0]}-{c}", q.parent[1]) if q.parent else None
            questions.append(Question(f"{q.name}-{c}", q.answers, parent, q.text))
    return DecisionTree(name, tuple(questions))


TREES: dict[str, DecisionTree] = {
    "gz1": GZ1_TREE,
    "gz2": GZ2_TREE,
    "kaggle": GZ2_TREE,
    "gzd-5": GZD5_TREE,
    "gzd-1-2": GZD12_TREE,
    "gz-hubble": GZ_HUBBLE_TREE,
    "gz-candels": GZ_CANDELS_TREE,
}
"""Every known tree by name (``kaggle`` is the GZ2 tree)."""


def get_tree(name: str) -> DecisionTree:
    """The decision tree called ``name`` (one of :data:`TREES`); the error lists the valid names."""
    try:
        return TREES[name]
    except KeyError:
        raise CatalogError(f"unknown decision tree {name!r}; choose one of: {', '.join(TREES)}") from None
