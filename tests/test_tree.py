"""Whole-tree maths: the flat layout of a decision tree, tree weighting (the Kaggle targets), the
Dirichlet-multinomial and per-question soft cross-entropy losses, and the per-question metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import dirichlet_multinomial

from hf_galaxy.data.catalogs.trees import GZ2_TREE, GZD5_TREE
from hf_galaxy.data.tree import TreeLayout, tree_layout_of
from hf_galaxy.metrics import kaggle_tree_rmse, tree_metrics
from hf_galaxy.training.tree_loss import (
    concentrations,
    dirichlet_multinomial_nll,
    expected_fractions,
    tree_soft_cross_entropy,
)

GZ2 = TreeLayout.from_tree(GZ2_TREE)


def test_gz2_layout_has_the_37_kaggle_answers_and_survives_config_json(tmp_path) -> None:
    from transformers import AutoConfig, ViTConfig

    assert len(GZ2.questions) == 11 and GZ2.n_answers == 37
    assert GZ2.answer_names[:4] == ["smooth-or-featured_smooth", "smooth-or-featured_featured-or-disk",
                                    "smooth-or-featured_artifact", "disk-edge-on_yes"]  # fmt: skip
    assert [s.stop - s.start for s in GZ2.slices()] == [3, 2, 2, 2, 4, 2, 3, 7, 3, 3, 6]
    assert TreeLayout.from_dict(GZ2.to_dict()) == GZ2
    ViTConfig(num_labels=37, galaxy_zoo_tree=GZ2.to_dict()).save_pretrained(tmp_path)
    assert tree_layout_of(AutoConfig.from_pretrained(tmp_path)) == GZ2  # no trust_remote_code needed
    assert tree_layout_of(ViTConfig()) is None
    assert TreeLayout.from_tree(GZD5_TREE).n_answers == 34


def test_layout_errors_name_the_question() -> None:
    with pytest.raises(ValueError, match="'b' has an unknown parent answer a/maybe"):
        TreeLayout("t", ("a", "b"), (("yes", "no"), ("x", "y")), (None, ("a", "maybe")))
    with pytest.raises(ValueError, match="'a' comes before its parent 'b'"):
        TreeLayout("t", ("a", "b"), (("yes", "no"), ("x", "y")), (("b", "x"), None))
    with pytest.raises(ValueError, match="not a decision-tree layout"):
        TreeLayout.from_dict({"name": "t"})


def _one_galaxy() -> np.ndarray:
    """Within-question GZ2 fractions of one galaxy, chosen to be easy to weight by hand."""
    f = np.zeros((1, 37))
    values = {
        ("smooth-or-featured", "smooth"): 0.2, ("smooth-or-featured", "featured-or-disk"): 0.7,
        ("smooth-or-featured", "artifact"): 0.1, ("disk-edge-on", "yes"): 0.25, ("disk-edge-on", "no"): 0.75,
        ("bar", "yes"): 0.4, ("bar", "no"): 0.6, ("has-spiral-arms", "yes"): 0.8, ("has-spiral-arms", "no"): 0.2,
        ("something-odd", "yes"): 0.5, ("something-odd", "no"): 0.5, ("spiral-winding", "tight"): 1.0,
    }  # fmt: skip
    for (q, a), v in values.items():
        f[0, GZ2.answer_index(q, a)] = v
    return f


def test_tree_weighting_by_hand() -> None:
    f = _one_galaxy()
    w = GZ2.weighted(f)
    at = lambda q, a: w[0, GZ2.answer_index(q, a)]  # noqa: E731
    assert at("smooth-or-featured", "featured-or-disk") == pytest.approx(0.7)
    assert at("disk-edge-on", "no") == pytest.approx(0.7 * 0.75)  # 0.525
    assert at("bar", "yes") == pytest.approx(0.7 * 0.75 * 0.4)  # 0.21
    assert at("spiral-winding", "tight") == pytest.approx(0.7 * 0.75 * 0.8)  # 0.42
    assert at("something-odd", "yes") == pytest.approx(0.9 * 0.5)  # every path but artifact: 1 - 0.1
    kaggle = GZ2.weighted(f, unscaled=["something-odd"])
    assert kaggle[0, GZ2.answer_index("something-odd", "yes")] == pytest.approx(0.5)  # Kaggle's Q6 quirk


def test_kaggle_rmse_against_a_hand_computed_value() -> None:
    f = _one_galaxy()
    target = GZ2.weighted(f, unscaled=["something-odd"])
    assert kaggle_tree_rmse(f, target, GZ2) == pytest.approx(0.0, abs=1e-12)
    # move 0.1 of the bar votes from "no" to "yes": two outputs change by 0.525 * 0.1 each
    g = f.copy()
    g[0, GZ2.answer_index("bar", "yes")] += 0.1
    g[0, GZ2.answer_index("bar", "no")] -= 0.1
    assert kaggle_tree_rmse(g, target, GZ2) == pytest.approx(np.sqrt(2 * 0.0525**2 / 37))
    # a change at the root moves every descendant: featured 0.7 -> 0.6 (smooth 0.2 -> 0.3)
    h = f.copy()
    h[0, GZ2.answer_index("smooth-or-featured", "featured-or-disk")] = 0.6
    h[0, GZ2.answer_index("smooth-or-featured", "smooth")] = 0.3
    expected = GZ2.weighted(h, unscaled=["something-odd"]) - target
    assert kaggle_tree_rmse(h, target, GZ2) == pytest.approx(np.sqrt(np.mean(expected**2)))
    assert (
        np.count_nonzero(np.abs(expected) > 1e-12) == 2 + 2 + 2 + 2 + 1
    )  # root, edge-on, bar, arms, winding


def test_counts_rebuilt_from_fractions_give_the_fractions_back() -> None:
    f = _one_galaxy()
    counts = GZ2.counts_from_fractions(f, 400)
    assert counts[0, GZ2.answer_index("smooth-or-featured", "featured-or-disk")] == 280
    assert counts[0, GZ2.answer_index("bar", "yes")] == round(400 * 0.525 * 0.4)
    back = GZ2.fractions(counts)
    answered = ~np.isnan(back[0])
    np.testing.assert_allclose(back[0, answered], f[0, answered], atol=1e-9)
    # how-rounded is reached by the 80 "smooth" volunteers, but this galaxy's fractions give it no answers
    assert GZ2.reach(f)[0, GZ2.questions.index("how-rounded")] == pytest.approx(0.2)
    assert GZ2.totals(counts)[0, GZ2.questions.index("how-rounded")] == 0
    assert np.isnan(back[0, GZ2.answer_index("how-rounded", "round")])


def test_dirichlet_multinomial_nll_matches_scipy_and_ignores_unanswered_questions() -> None:
    layout = TreeLayout("t", ("q1", "q2"), (("a", "b", "c"), ("x", "y")), (None, ("q1", "a")))
    alpha = torch.tensor([[2.0, 3.5, 1.2, 4.0, 1.5], [1.1, 9.0, 2.0, 3.0, 3.0]], requires_grad=True)
    counts = torch.tensor([[3, 5, 0, 2, 1], [0, 7, 1, 0, 0]])
    nll = dirichlet_multinomial_nll(alpha, counts, layout.slices())
    a, k = alpha.detach().numpy(), counts.numpy()
    expected0 = -dirichlet_multinomial.logpmf(k[0, :3], a[0, :3], 8) - dirichlet_multinomial.logpmf(
        k[0, 3:], a[0, 3:], 3
    )
    expected1 = -dirichlet_multinomial.logpmf(k[1, :3], a[1, :3], 8)  # q2 unanswered: contributes 0
    np.testing.assert_allclose(nll.detach().numpy(), [expected0, expected1], rtol=1e-5)
    nll.sum().backward()
    assert torch.all(alpha.grad[1, 3:] == 0) and torch.all(alpha.grad[0] != 0)


def test_soft_cross_entropy_and_expected_fractions() -> None:
    layout = TreeLayout("t", ("q1", "q2"), (("a", "b"), ("x", "y", "z")), (None, ("q1", "a")))
    logits = torch.tensor([[0.0, 1.0, 2.0, 0.0, -1.0]])
    counts = torch.tensor([[1, 3, 0, 0, 0]])  # q2 unanswered
    loss = tree_soft_cross_entropy(logits, counts, layout.slices())
    manual = -(0.25 * torch.log_softmax(logits[0, :2], 0)[0] + 0.75 * torch.log_softmax(logits[0, :2], 0)[1])
    torch.testing.assert_close(loss, manual.reshape(1))
    frac = expected_fractions(logits, layout.slices(), "soft_ce")
    torch.testing.assert_close(frac[0, :2].sum(), torch.tensor(1.0))
    alpha = concentrations(logits)
    assert torch.all((alpha > 1) & (alpha < 100))
    dm = expected_fractions(logits, layout.slices(), "dirichlet")
    torch.testing.assert_close(dm[0, 2:], alpha[0, 2:] / alpha[0, 2:].sum())
    with pytest.raises(ValueError, match="'dirichlet' or 'soft_ce'"):
        expected_fractions(logits, layout.slices(), "mse")


def test_tree_metrics_per_question() -> None:
    layout = TreeLayout("t", ("q1", "q2"), (("a", "b"), ("x", "y")), (None, ("q1", "a")))
    counts = np.array([[9, 1, 4, 0], [5, 5, 0, 0], [1, 9, 0, 0]])  # q2 answered by galaxy 0 only
    pred = np.array([[0.8, 0.2, 0.4, 0.6], [0.6, 0.4, 0.5, 0.5], [0.6, 0.4, 0.5, 0.5]])
    m = tree_metrics(pred, counts, layout, confident=0.8)
    q1_err = np.array([0.1, 0.1, 0.1, 0.1, 0.5, 0.5])  # |0.8-0.9|, |0.2-0.1|, 0.1, 0.1, |0.6-0.1|, |0.4-0.9|
    assert m["q1_rmse"] == pytest.approx(np.sqrt(np.mean(q1_err**2))) and m["q1_mae"] == pytest.approx(
        q1_err.mean()
    )
    assert m["q1_answered"] == 3 and m["q1_confident"] == 2 and m["q1_accuracy"] == pytest.approx(0.5)
    assert m["q2_answered"] == 1 and m["q2_rmse"] == pytest.approx(0.6) and m["q2_accuracy"] == 0.0
    all_err = np.concatenate([q1_err, [0.6, 0.6]])
    assert m["tree_rmse"] == pytest.approx(np.sqrt(np.mean(all_err**2)))


# ------------------------------------------------------------------------------------- the tree label scheme
FIX = __import__("pathlib").Path(__file__).parent / "fixtures" / "catalogs"


def test_tree_scheme_keeps_gz2_catalogue_counts_of_all_37_answers() -> None:
    import pandas as pd

    from hf_galaxy.data.catalogs import read_catalog
    from hf_galaxy.data.labels import make_labels

    cat = read_catalog(FIX / "gz2_hart16.csv")
    lab = make_labels(cat, label_scheme="tree")
    raw = pd.read_csv(FIX / "gz2_hart16.csv", dtype={"dr7objid": str})
    assert lab.tree == GZ2 and lab.answer_counts.shape == (len(lab.table), 37)
    row = raw.set_index("dr7objid").loc[str(lab.table["id"].iat[0])]
    assert lab.answer_counts[0, GZ2.answer_index("bar", "yes")] == row["t03_bar_a06_bar_count"]
    assert (
        lab.answer_counts[0, GZ2.answer_index("spiral-arm-count", "more-than-4")]
        == row["t11_arms_number_a36_more_than_4_count"]
    )
    root = lab.answer_counts[:, :3]
    assert (lab.labels == root.argmax(axis=1)).all() and lab.class_names[0] == "smooth_or_featured_smooth"


def test_tree_scheme_rebuilds_kaggle_counts_from_the_fractions() -> None:
    from hf_galaxy.data.catalogs import read_catalog
    from hf_galaxy.data.labels import NOMINAL_VOLUNTEERS, make_labels

    cat = read_catalog(FIX / "training_solutions_rev1.csv")
    lab = make_labels(cat, label_scheme="tree")
    fractions = cat.table[GZ2.answer_names].to_numpy(dtype=float)
    rebuilt = GZ2.fractions(lab.answer_counts)
    root = GZ2.slices()[0]
    np.testing.assert_allclose(
        rebuilt[:, root], fractions[: len(rebuilt), root], atol=0.5 / NOMINAL_VOLUNTEERS + 1e-9
    )
    assert GZ2.totals(lab.answer_counts)[:, 0].max() <= NOMINAL_VOLUNTEERS + 2


def test_tree_scheme_drops_and_counts_negative_or_fractional_counts() -> None:
    from hf_galaxy.data.catalogs import read_catalog
    from hf_galaxy.data.labels import make_labels

    cat = read_catalog(FIX / "gz2_hart16.csv")
    table = cat.table.copy()
    table.loc[0, "bar_yes_count"] = -3
    table.loc[1, "bar_no_count"] = 2.5
    cat.table = table
    lab = make_labels(cat, label_scheme="tree")
    assert lab.counts == {"vote count negative": 1, "vote count not an integer": 1}
    assert {i for i, _ in lab.dropped} == {str(table["id"].iat[0]), str(table["id"].iat[1])}
    assert len(lab.table) == len(table) - 2


def test_tree_scheme_needs_a_tree_and_gz1_is_a_one_question_tree(tmp_path) -> None:
    import pandas as pd

    from hf_galaxy.data.catalogs import Catalog, read_catalog
    from hf_galaxy.data.labels import LabelError, make_labels

    lab = make_labels(read_catalog(FIX / "GalaxyZoo1_DR_table2.csv"), label_scheme="tree")
    assert lab.tree.questions == ("gz1",) and lab.tree.n_answers == 6
    # first row: NVOTE 21, P_EL .714, P_CW 0, P_ACW .095, P_EDGE .190, P_DK 0, P_MG 0 -> rint(21 * p)
    assert lab.answer_counts[0].tolist() == [15, 0, 2, 4, 0, 0]
    bare = Catalog(table=pd.DataFrame({"id": ["a"]}), release="folder", source="mem.csv", tree=None)
    with pytest.raises(
        LabelError, match="mem.csv: label_scheme='tree' needs a catalogue with a decision tree"
    ):
        make_labels(bare, label_scheme="tree")


def test_incomplete_tree_names_the_question_unless_restricted(tmp_path) -> None:
    import pandas as pd

    from hf_galaxy.data.catalogs import read_catalog
    from hf_galaxy.data.labels import LabelError, make_labels

    src = FIX / "gz_decals_volunteers_5.csv"
    assert make_labels(read_catalog(src), label_scheme="tree").tree.n_answers == 34
    path = tmp_path / "no_weak_bar.csv"
    pd.read_csv(src).drop(columns=["bar_weak", "bar_weak_fraction", "bar_weak_debiased"]).to_csv(
        path, index=False
    )
    cat = read_catalog(path)
    with pytest.raises(
        LabelError,
        match=r"no_weak_bar.csv: the tree is incomplete: question 'bar' lacks the answer\(s\) weak",
    ):
        make_labels(cat, label_scheme="tree")
    complete = make_labels(cat, label_scheme="tree", tree_questions="complete")
    assert "bar" not in complete.tree.questions and complete.tree.n_answers == 31
    assert len(complete.table) == 10  # no galaxy is lost with the question
    picked = make_labels(
        cat, label_scheme="tree", tree_questions="smooth-or-featured,disk-edge-on,spiral-winding"
    )
    # spiral-winding is asked after has-spiral-arms, which is not kept: it goes too
    assert picked.tree.questions == ("smooth-or-featured", "disk-edge-on")
    with pytest.raises(LabelError, match="tree_questions names 'bar', which lacks the answer"):
        make_labels(cat, label_scheme="tree", tree_questions="smooth-or-featured,bar")
    with pytest.raises(LabelError, match="must keep the first question 'smooth-or-featured'"):
        make_labels(cat, label_scheme="tree", tree_questions="disk-edge-on")


def test_load_galaxy_dataset_tree_scheme_stores_counts_and_the_tree(tmp_path) -> None:
    from PIL import Image

    from hf_galaxy import load_galaxy_dataset
    from hf_galaxy.data.catalogs import read_catalog

    ids = read_catalog(FIX / "training_solutions_rev1.csv").table["id"].astype(str)
    images = tmp_path / "images"
    images.mkdir()
    for gid in ids:
        Image.new("RGB", (40, 40), (80, 60, 40)).save(images / f"{gid}.jpg")
    dsd = load_galaxy_dataset(FIX / "training_solutions_rev1.csv", images, label_scheme="tree", image_size=32)
    first = next(iter(dsd.values()))
    assert first.features["counts"].length == 37
    assert TreeLayout.from_dict(dsd.galaxy_info["tree"]) == GZ2
    total = sum(len(ds) for ds in dsd.values())
    assert total == len(ids) and all(sum(r["counts"][:3]) > 0 for ds in dsd.values() for r in ds)


def test_recipes_refuse_counts_without_their_tree_in_one_line(tmp_path) -> None:
    from hf_galaxy import finetune
    from tests.galaxy_tiny import tiny_dataset_dict

    dsd = tiny_dataset_dict(n_per_class=1, size=32)
    for split in dsd:
        dsd[split] = dsd[split].add_column("counts", [[1, 2, 3]] * len(dsd[split]))
    with pytest.raises(ValueError, match="has a 'counts' column but no decision tree"):
        finetune(dsd, "vit-tiny", tmp_path / "o", max_steps=1, use_cpu=True)
