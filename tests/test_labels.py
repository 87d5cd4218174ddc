"""Votes -> labels on in-memory canonical catalogues (no reader involved)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hf_galaxy.data.catalogs.base import Catalog, DecisionTree, Question
from hf_galaxy.data.labels import LabelError, make_labels, share_asked

GZ1 = DecisionTree(
    "gz1",
    (
        Question(
            "gz1",
            (
                "elliptical",
                "clockwise_spiral",
                "anticlockwise_spiral",
                "edge_on",
                "star_or_unknown",
                "merger",
            ),
        ),
    ),
)
TREE = DecisionTree(
    "mini",
    (
        Question("smooth-or-featured", ("smooth", "featured-or-disk", "artifact")),
        Question("disk-edge-on", ("yes", "no"), parent=("smooth-or-featured", "featured-or-disk")),
        Question("has-spiral-arms", ("yes", "no"), parent=("disk-edge-on", "no")),
    ),
)


def gz1_catalog(rows: list[list[float]]) -> Catalog:
    cols = [f"gz1_{a}" for a in GZ1.root.answers]
    table = pd.DataFrame(rows, columns=cols)
    table.insert(0, "id", [f"g{i}" for i in range(len(rows))])
    return Catalog(table=table, release="gz1", source="mem.csv", tree=GZ1)


ROWS = [
    [0.90, 0.02, 0.02, 0.02, 0.02, 0.02],  # clean elliptical
    [0.10, 0.50, 0.30, 0.05, 0.03, 0.02],  # plurality cw, not clean
    [0.05, 0.05, 0.85, 0.03, 0.01, 0.01],  # clean acw
    [0.30, 0.05, 0.05, 0.40, 0.10, 0.10],  # plurality edge-on
    [0.00, 0.00, 0.00, 0.05, 0.05, 0.90],  # clean merger
]


def test_plurality_clean_and_votes_schemes_differ_as_documented() -> None:
    cat = gz1_catalog(ROWS)
    plur = make_labels(cat)
    assert plur.class_names == [
        "elliptical",
        "clockwise_spiral",
        "anticlockwise_spiral",
        "edge_on",
        "star_or_unknown",
        "merger",
    ]
    assert plur.labels.tolist() == [0, 1, 2, 3, 5]
    clean = make_labels(cat, label_scheme="clean", threshold=0.8)
    assert clean.table["id"].tolist() == ["g0", "g2", "g4"]
    assert clean.counts == {"winning vote fraction below threshold 0.8": 2}
    assert sorted(i for i, _ in clean.dropped) == ["g1", "g3"]
    soft = make_labels(cat, label_scheme="votes")
    np.testing.assert_allclose(soft.votes.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(soft.votes[1], ROWS[1], atol=1e-6)
    assert soft.labels.tolist() == plur.labels.tolist()


def test_bad_fractions_are_excluded_and_counted() -> None:
    rows = [
        *ROWS,
        [np.nan, 0.2, 0.2, 0.2, 0.2, 0.2],
        [-0.1, 0.5, 0.3, 0.1, 0.1, 0.1],
        [1.2, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.3, 0.3, 0.1, 0.0, 0.0, 0.0],
    ]  # sums to 0.7
    lab = make_labels(gz1_catalog(rows))
    assert len(lab.labels) == 5
    assert lab.counts["vote fraction NaN, negative or > 1"] == 3
    assert sum(v for k, v in lab.counts.items() if "do not sum to 1" in k) == 1
    assert {i for i, _ in lab.dropped} == {"g5", "g6", "g7", "g8"}


def test_strict_raises_at_first_problem_naming_the_row() -> None:
    rows = [*ROWS, [np.nan, 0.2, 0.2, 0.2, 0.2, 0.2]]
    with pytest.raises(LabelError, match="id=g5"):
        make_labels(gz1_catalog(rows), strict=True)


def test_gz1_merge_follows_p_cs_convention() -> None:
    lab = make_labels(gz1_catalog(ROWS), classes="elliptical-spiral-other")
    assert lab.class_names == ["elliptical", "spiral", "other"]
    # row 3: P_EL 0.30 vs P_CS = 0.05 + 0.05 + 0.40 = 0.50 -> spiral
    assert lab.labels.tolist() == [0, 1, 1, 1, 2]
    np.testing.assert_allclose(lab.votes[3], [0.30, 0.50, 0.20], atol=1e-6)
    clean = make_labels(gz1_catalog(ROWS), classes="elliptical-spiral-other", label_scheme="clean")
    # merged cw+acw+edge for row 1 is 0.85 -> clean spiral, although no single answer reached 0.8
    assert "g1" in clean.table["id"].tolist()


def test_class_selection_drops_other_winners_and_renormalises() -> None:
    lab = make_labels(gz1_catalog(ROWS), classes=["elliptical", "merger"])
    assert lab.class_names == ["elliptical", "merger"]
    assert lab.table["id"].tolist() == ["g0", "g4"]
    np.testing.assert_allclose(lab.votes.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(LabelError, match="unknown class name"):
        make_labels(gz1_catalog(ROWS), classes=["spiral"])


def test_question_and_share_of_volunteers_asked() -> None:
    table = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "smooth-or-featured_smooth": [0.1, 0.8, 0.2],
            "smooth-or-featured_featured-or-disk": [0.9, 0.2, 0.8],
            "smooth-or-featured_artifact": [0.0, 0.0, 0.0],
            "disk-edge-on_yes": [0.1, 0.0, 0.5],
            "disk-edge-on_no": [0.9, 1.0, 0.5],
            "has-spiral-arms_yes": [0.7, 0.5, 0.2],
            "has-spiral-arms_no": [0.3, 0.5, 0.8],
        }
    )
    cat = Catalog(table=table, release="decals", source="mem.csv", tree=TREE)
    np.testing.assert_allclose(share_asked(table, TREE, TREE.question("has-spiral-arms")), [0.81, 0.2, 0.4])
    lab = make_labels(cat, question="has-spiral-arms")
    assert lab.class_names == ["has_spiral_arms_yes", "has_spiral_arms_no"]
    assert lab.table["id"].tolist() == ["a"]
    assert list(lab.counts.values()) == [2]
    lab = make_labels(cat, question="has-spiral-arms", min_share_asked=0.3)
    assert lab.table["id"].tolist() == ["a", "c"] and lab.labels.tolist() == [0, 1]
    default = make_labels(cat)  # root question
    assert default.question == "smooth-or-featured" and default.labels.tolist() == [1, 0, 1]
    with pytest.raises(Exception, match="not in the mini decision tree"):
        make_labels(cat, question="bar")


def test_ready_label_column_with_class_names() -> None:
    table = pd.DataFrame({"id": ["a", "b", "c", "d"], "ring": [1, 0, 1, None]})
    cat = Catalog(
        table=table,
        release="decals",
        source="rings.csv",
        tree=None,
        label_columns=("ring",),
        class_names={"ring": ["not_ring", "ring"]},
    )
    lab = make_labels(cat)  # no vote question: the ready column is used
    assert lab.scheme == "column" and lab.class_names == ["not_ring", "ring"]
    assert lab.labels.tolist() == [1, 0, 1]
    np.testing.assert_array_equal(lab.votes, np.eye(2, dtype=np.float32)[[1, 0, 1]])
    assert lab.dropped == [("d", "label column 'ring' is empty")]
    with pytest.raises(LabelError, match="label_column='nope' is not a column"):
        make_labels(cat, label_column="nope")


def test_empty_result_names_the_filter() -> None:
    with pytest.raises(LabelError, match=r"winning vote fraction below threshold 0.99: 5 of 5 rows"):
        make_labels(gz1_catalog(ROWS), label_scheme="clean", threshold=0.99)


def test_bad_scheme_and_threshold_are_named() -> None:
    with pytest.raises(LabelError, match="label_scheme='best'"):
        make_labels(gz1_catalog(ROWS), label_scheme="best")
    with pytest.raises(LabelError, match="threshold=1.5"):
        make_labels(gz1_catalog(ROWS), threshold=1.5)


def test_partial_merge_drops_galaxies_won_by_the_classes_left_out() -> None:
    """elliptical-spiral leaves star_or_unknown and merger out: a clean merger must not become a spiral."""
    lab = make_labels(gz1_catalog(ROWS), classes="elliptical-spiral")
    assert lab.class_names == ["elliptical", "spiral"]
    assert "g4" not in lab.table["id"].tolist()  # P_MG = 0.90
    assert dict(lab.dropped)["g4"] == "plurality class not among the selected classes"
    # row 3: P_EL 0.30, merged spiral 0.50, left out 0.20 -> spiral
    assert dict(zip(lab.table["id"], lab.labels.tolist()))["g3"] == 1
    np.testing.assert_allclose(lab.votes.sum(axis=1), 1.0, atol=1e-6)


def test_a_class_in_two_merged_classes_is_an_error() -> None:
    with pytest.raises(LabelError, match=r"\['edge_on'\] appear in more than one merged class"):
        make_labels(gz1_catalog(ROWS), classes={"disk": ["edge_on", "clockwise_spiral"], "flat": ["edge_on"]})


def test_gz2_something_odd_is_reached_by_every_path_but_artifact() -> None:
    from hf_galaxy.data.catalogs.trees import GZ2_TREE

    table = pd.DataFrame(
        {
            "id": ["a", "b"],
            "smooth-or-featured_smooth": [0.5, 0.1],
            "smooth-or-featured_featured-or-disk": [0.4, 0.1],
            "smooth-or-featured_artifact": [0.1, 0.8],
        }
    )
    share = share_asked(table, GZ2_TREE, GZ2_TREE.question("something-odd"))
    np.testing.assert_allclose(share, [0.9, 0.2])
