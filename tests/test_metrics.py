"""Local metrics (no network) and the plots written next to them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hf_galaxy.metrics import (
    classification_metrics,
    confusion,
    expected_calibration_error,
    make_compute_metrics,
    softmax,
    vote_rmse,
    votes_are_informative,
)
from hf_galaxy.plots import plot_confusion_matrix, plot_sample_grid, plot_training_curves

NAMES = ["a", "b", "c"]


def test_perfect_predictions():
    labels = np.array([0, 1, 2, 1])
    probs = np.eye(3)[labels] * 0.9 + 0.1 / 3
    m = classification_metrics(probs, labels, NAMES)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["top2_accuracy"] == 1.0
    assert m["precision_b"] == 1.0 and m["recall_c"] == 1.0
    # confidence 0.9333 on all-correct rows: ECE = 1 - 0.9333
    assert m["ece"] == pytest.approx(1 - (0.9 + 0.1 / 3))
    assert "vote_rmse" not in m


def test_per_class_precision_recall_and_top2_by_hand():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array(
        [
            [0.6, 0.3, 0.1],  # 0 -> 0
            [0.2, 0.5, 0.3],  # 0 -> 1 (0 second)
            [0.1, 0.8, 0.1],  # 1 -> 1
            [0.7, 0.1, 0.2],  # 1 -> 0 (1 third: top-2 miss)
            [0.1, 0.2, 0.7],  # 2 -> 2
            [0.3, 0.4, 0.3],  # 2 -> 1 (tie second: argsort decides)
        ]
    )
    m = classification_metrics(probs, labels, NAMES)
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["precision_a"] == pytest.approx(1 / 2) and m["recall_a"] == pytest.approx(1 / 2)
    assert m["precision_b"] == pytest.approx(1 / 3) and m["recall_b"] == pytest.approx(1 / 2)
    assert m["precision_c"] == pytest.approx(1.0) and m["recall_c"] == pytest.approx(1 / 2)
    f1 = [2 * p * r / (p + r) for p, r in ((0.5, 0.5), (1 / 3, 0.5), (1.0, 0.5))]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert 4 / 6 <= m["top2_accuracy"] <= 5 / 6


def test_ece_by_hand_with_15_bins():
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    labels = np.array([0, 1, 0, 0])
    # bin (0.9333, 1.0]: conf 0.95, acc 0.5 ; bin (0.5333, 0.6]: conf 0.55, acc 1.0
    expected = 0.5 * abs(0.5 - 0.95) + 0.5 * abs(1.0 - 0.55)
    assert expected_calibration_error(probs, labels, 15) == pytest.approx(expected)
    assert np.isnan(expected_calibration_error(np.zeros((0, 2)), np.zeros(0)))


def test_vote_rmse_and_ignored_rows():
    probs = np.array([[0.5, 0.5, 0.0], [0.2, 0.2, 0.6], [1.0, 0.0, 0.0]])
    votes = np.array([[0.7, 0.3, 0.0], [0.0, 0.2, 0.8], [0.0, 1.0, 0.0]])
    assert vote_rmse(probs, votes) == pytest.approx(np.sqrt(np.mean((probs - votes) ** 2)))
    m = classification_metrics(probs, np.array([0, 2, -100]), NAMES, votes=votes)
    assert m["accuracy"] == 1.0  # the -100 row is ignored
    assert m["vote_rmse"] == pytest.approx(np.sqrt(np.mean((probs[:2] - votes[:2]) ** 2)))
    assert not votes_are_informative(np.eye(3)) and votes_are_informative(votes)
    with pytest.raises(ValueError, match="same shape"):
        vote_rmse(probs, votes[:, :2])
    with pytest.raises(ValueError, match="N x 3"):
        classification_metrics(probs[:, :2], np.array([0, 1, 0]), NAMES)


def test_compute_metrics_gets_labels_and_votes_from_trainer():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    votes = np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    fn = make_compute_metrics(NAMES)
    m = fn(SimpleNamespace(predictions=logits, label_ids=(np.array([0, 2]), votes)))
    assert m["accuracy"] == 1.0
    assert m["vote_rmse"] == pytest.approx(vote_rmse(softmax(logits), votes))
    m2 = fn(SimpleNamespace(predictions=(logits,), label_ids=np.array([1, 2])))
    assert m2["accuracy"] == 0.5 and "vote_rmse" not in m2
    np.testing.assert_allclose(softmax(logits), [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000


def test_plots_are_written(tmp_path):
    cm = confusion(np.array([0, 1, 2, 2, -100]), np.array([0, 2, 2, 1, 0]), 3)
    assert cm.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    p1 = plot_confusion_matrix(cm, NAMES, tmp_path / "cm.png")
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(5)]
    p2 = plot_sample_grid(
        imgs, [0, 1, 2, 0, 1], [0, 2, 2, 1, 1], NAMES, tmp_path / "grid.png", probs=np.full((5, 3), 1 / 3)
    )
    history = [
        {"loss": 1.5, "step": 5, "epoch": 0.5},
        {"loss": 1.2, "step": 10, "epoch": 1.0},
        {"eval_loss": 1.1, "eval_accuracy": 0.5, "eval_macro_f1": 0.4, "step": 10, "epoch": 1.0},
        {"train_runtime": 3.0, "step": 10},
    ]
    p3 = plot_training_curves(history, tmp_path / "curves.png")
    p4 = plot_training_curves([], tmp_path / "empty.png")
    assert all(_is_png(p) for p in (p1, p2, p3, p4))
    with pytest.raises(ValueError, match="at least one image"):
        plot_sample_grid([], [], [], NAMES, tmp_path / "none.png")


def test_the_metrics_are_local_evaluate_modules_combined_offline(monkeypatch):
    import evaluate
    from huggingface_hub import constants

    from hf_galaxy.metrics import METRIC_MODULES, classification_metrics, load_metric, make_compute_metrics

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    rng = np.random.default_rng(0)
    names = ["elliptical", "spiral", "other"]
    probs = rng.dirichlet(np.ones(3), size=50)
    labels = rng.integers(0, 3, size=50)
    labels[:3] = -100  # unlabelled rows are left out
    votes = rng.dirichlet(np.ones(3), size=50)
    expected = classification_metrics(probs, labels, names, votes=votes)
    assert sorted(p.name for p in METRIC_MODULES.iterdir() if p.is_dir()) == [
        "galaxy_classification", "galaxy_ece", "vote_rmse",
    ]  # fmt: skip
    ece = load_metric("galaxy_ece")
    assert isinstance(ece, evaluate.EvaluationModule)
    known = labels >= 0
    assert ece.compute(predictions=probs[known], references=labels[known])["ece"] == pytest.approx(
        expected["ece"]
    )
    combined = evaluate.combine([load_metric("galaxy_classification"), ece])
    got = combined.compute(predictions=probs[known], references=labels[known], class_names=names)
    assert got.keys() == expected.keys() - {"vote_rmse"}
    assert got == pytest.approx({k: expected[k] for k in got})
    # the Trainer's compute_metrics goes through them: same numbers, vote RMSE included
    out = make_compute_metrics(names)(SimpleNamespace(predictions=np.log(probs), label_ids=(labels, votes)))
    assert out == pytest.approx(expected)
    with pytest.raises(ValueError, match="no hf-galaxy metric module 'accuracy'"):
        load_metric("accuracy")
