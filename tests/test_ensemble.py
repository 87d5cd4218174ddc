"""Ensembles: voting, weighted voting, cross-fitted stacking, one-pass inference, TTA, save/reload, publish,
the recipe and the CLI. Members are tiny ViTs (2 layers, hidden 32, 32 px, patch 8) trained a few steps with
different seeds; no expected metric values are hard-coded."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hf_galaxy.ensemble import (
    ENSEMBLE_CONFIG_NAME,
    RESULTS_NAME,
    GalaxyEnsemble,
    LabelMismatchError,
    cross_fit_stacking,
    fit_vote_weights,
    hard_vote,
    load_member,
    predict_members,
    publish_ensemble,
    soft_vote,
    train_members,
)
from hf_galaxy.ensemble.strategies import _bootstrap
from tests.galaxy_tiny import GZ1_CLASSES, TINY_VIT, load_recipe, tiny_dataset_dict

SEEDS = (0, 1, 2)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-15, None)).mean())


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == labels).mean())


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread; on a shared 2-core machine two threads can be 100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return tiny_dataset_dict(n_per_class=10, size=32, seed=0)


@pytest.fixture(scope="module")
def member_dirs(tmp_path_factory, data) -> list[Path]:
    """Three tiny ViTs trained 25 steps each on the same data with seeds 0, 1, 2 (saved like a recipe run)."""
    from hf_galaxy.data.transforms import ProcessorSpec
    from hf_galaxy.models import load_classifier

    root = tmp_path_factory.mktemp("members")
    dirs = []
    x = y = None
    for seed in SEEDS:
        torch.manual_seed(seed)
        model, processor = load_classifier(None, GZ1_CLASSES, model_config=TINY_VIT)
        if x is None:
            spec = ProcessorSpec.from_processor(processor)
            x = torch.stack([spec(img) for img in data["train"]["image"]])
            y = torch.tensor(data["train"]["label"])
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(25):
            idx = torch.randint(0, len(x), (16,), generator=gen)
            loss = F.cross_entropy(model(pixel_values=x[idx]).logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        out = root / f"seed{seed}"
        model.save_pretrained(out)
        processor.save_pretrained(out)
        dirs.append(out)
    return dirs


@pytest.fixture(scope="module")
def ensemble(member_dirs) -> GalaxyEnsemble:
    ens = GalaxyEnsemble([str(d) for d in member_dirs])
    ens.load()
    return ens


@pytest.fixture(scope="module")
def val_preds(ensemble, data):
    return ensemble.predict_members(data["validation"], progress=False)


@pytest.fixture(scope="module")
def test_preds(ensemble, data):
    return ensemble.predict_members(data["test"], progress=False)


def test_soft_voting_is_at_least_as_good_as_the_mean_member(ensemble, test_preds):
    """With fixed seeds, soft voting's test accuracy is at least the members' mean accuracy (the issue's check;
    it can fail, see the next test), and the evaluation table says the same."""
    p, y = test_preds.member_probs, test_preds.labels
    assert p.shape == (3, len(y), len(GZ1_CLASSES))
    assert not np.allclose(p[0], p[1]) and not np.allclose(p[1], p[2]), "members must differ"
    member_accuracy = [_accuracy(m, y) for m in p]
    assert max(member_accuracy) > 1 / len(GZ1_CLASSES), "members learned something"
    assert len({p[k].argmax(axis=1).tobytes() for k in range(3)}) > 1, "members disagree on some galaxies"
    assert _accuracy(soft_vote(p), y) >= np.mean(member_accuracy)
    rows = {r["model"]: r for r in ensemble.evaluate(test_preds)}
    assert rows["ensemble (soft)"]["accuracy"] >= rows["mean of members"]["accuracy"]
    assert rows["mean of members"]["accuracy"] == pytest.approx(np.mean(member_accuracy))
    # documentation only: this holds for any members and data (-log is convex, Jensen's inequality), so it
    # cannot fail and is not the check above
    assert nll(soft_vote(p), y) <= np.mean([nll(m, y) for m in p]) + 1e-12


def test_the_soft_voting_accuracy_check_can_fail():
    """Two barely-right members and one confidently wrong member: the mean member is right 2/3 of the time, soft
    voting never. So "soft voting >= mean member accuracy" is a real property of the trained members."""
    right, wrong = [0.51, 0.49], [0.0, 1.0]
    p = np.array([[right], [right], [wrong]])
    y = np.array([0])
    assert _accuracy(soft_vote(p), y) < np.mean([_accuracy(m, y) for m in p])


def test_hard_voting_majority_weights_and_ties():
    def one_hot(classes, n=3):
        return np.eye(n)[classes][:, None, :] * 0.8 + 0.2 / n  # (M, 1, C), argmax = classes

    p = one_hot([0, 0, 1])
    assert hard_vote(p).argmax(axis=1).tolist() == [0]
    assert hard_vote(p, weights=[0.2, 0.2, 0.6]).argmax(axis=1).tolist() == [1]
    np.testing.assert_allclose(hard_vote(p).sum(axis=1), 1.0)
    # a 1-1 tie is broken by the members' mean probability
    tie = np.array([[[0.5, 0.4, 0.1]], [[0.05, 0.6, 0.35]]])
    assert hard_vote(tie).argmax(axis=1).tolist() == [1]
    with pytest.raises(ValueError, match="weights"):
        soft_vote(p, weights=[1.0, -1.0, 1.0])


def test_weighted_voting_fits_weights_on_validation(val_preds):
    p, y = val_preds.member_probs, val_preds.labels
    w = fit_vote_weights(p, y)
    assert w.shape == (3,) and np.all(w >= 0) and np.isclose(w.sum(), 1.0)
    # the fitted weights minimise the validation log-loss over the simplex: no worse than uniform or any member
    assert nll(soft_vote(p, w), y) <= nll(soft_vote(p), y) + 1e-9
    assert nll(soft_vote(p, w), y) <= min(nll(m, y) for m in p) + 1e-9
    # a member that puts its mass on a wrong class gets (almost) no weight
    wrong = np.roll(p[0], 1, axis=1)
    w2 = fit_vote_weights(np.stack([p[0], p[1], wrong]), y)
    assert w2[2] < 0.05


def test_stacking_cross_fitting_never_uses_a_samples_own_label(val_preds):
    p, y = val_preds.member_probs, val_preds.labels
    fit = cross_fit_stacking(p, y, len(GZ1_CLASSES), n_folds=5, seed=0)
    n = len(y)
    assert sorted(np.unique(fit.folds).tolist()) == list(range(5))
    for f, train_idx in enumerate(fit.fold_train_indices):
        held_out = np.flatnonzero(fit.folds == f)
        assert len(held_out) and not set(held_out) & set(train_idx.tolist())  # fold model never saw its fold
        assert len(train_idx) + len(held_out) == n
    np.testing.assert_allclose(fit.oof_probs.sum(axis=1), 1.0)

    # perturb each of a few samples' label: its own out-of-fold meta-prediction must not move (the folds do
    # not depend on the labels), while other samples' rows and the final meta-learner do
    for i in (0, n // 2, n - 1):
        y2 = y.copy()
        y2[i] = (y[i] + 1) % len(GZ1_CLASSES)
        fit2 = cross_fit_stacking(p, y2, len(GZ1_CLASSES), n_folds=5, seed=0)
        np.testing.assert_array_equal(fit2.folds, fit.folds)
        np.testing.assert_array_equal(fit2.oof_probs[i], fit.oof_probs[i])
        others = np.flatnonzero(fit.folds != fit.folds[i])
        assert not np.array_equal(fit2.oof_probs[others], fit.oof_probs[others])
        assert not np.array_equal(fit2.meta_learner.coef_, fit.meta_learner.coef_)


def test_differing_label_maps_are_an_error_that_shows_both(member_dirs, tmp_path):
    other = tmp_path / "reordered"
    shutil.copytree(member_dirs[0], other)
    cfg = json.loads((other / "config.json").read_text())
    names = list(reversed(GZ1_CLASSES))
    cfg["id2label"] = {str(i): n for i, n in enumerate(names)}
    cfg["label2id"] = {n: i for i, n in enumerate(names)}
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(LabelMismatchError) as err:
        GalaxyEnsemble([str(member_dirs[0]), str(other)]).load()
    msg = str(err.value)
    assert "reordered" in msg and "'merger'" in msg and "0: 'elliptical'" in msg and "0: 'merger'" in msg


def test_one_pass_preprocesses_each_image_once_per_distinct_processor(
    member_dirs, data, tmp_path, monkeypatch
):
    from hf_galaxy.data.transforms import ProcessorSpec

    # a fourth member whose processor normalises differently must get its own preprocessing
    odd = tmp_path / "odd-norm"
    shutil.copytree(member_dirs[0], odd)
    pp = json.loads((odd / "preprocessor_config.json").read_text())
    pp["image_mean"], pp["image_std"] = [0.2, 0.3, 0.4], [0.25, 0.25, 0.25]
    (odd / "preprocessor_config.json").write_text(json.dumps(pp))
    members = [load_member(str(d)) for d in member_dirs] + [load_member(str(odd))]
    solo = [predict_members([m], data["test"], progress=False).member_probs[0] for m in members]

    calls = []
    original = ProcessorSpec.__call__
    monkeypatch.setattr(ProcessorSpec, "__call__", lambda self, img: calls.append(1) or original(self, img))
    forward_batches = []
    for m in members:
        m.model.register_forward_hook(lambda mod, args, out: forward_batches.append(len(out.logits)))
    preds = predict_members(members, data["test"], batch_size=8, progress=False)
    n = len(data["test"])
    assert (
        len(calls) == 2 * n
    )  # two distinct processor configurations, each image preprocessed once per config
    assert (
        sum(forward_batches) == 4 * n and max(forward_batches) <= 8
    )  # batched, every member sees every image
    for k in range(4):
        np.testing.assert_allclose(preds.member_probs[k], solo[k], rtol=1e-5, atol=1e-6)
    assert not np.allclose(solo[3], solo[0])  # the odd normalisation really changed member 0's inputs


def test_tta_rotation_averaging_composes_with_ensembling(ensemble, data):
    from hf_galaxy.data.transforms import ProcessorSpec
    from hf_galaxy.inference import TTAClassifier

    angles = [0, 90, 180, 270]
    probs = ensemble.predict_proba(data["test"], tta_rotations=angles, progress=False)
    members = ensemble.load()
    spec = ProcessorSpec.from_processor(members[0].processor)
    x = torch.stack([spec(img) for img in data["test"]["image"]])
    with torch.no_grad():
        per_member = [
            TTAClassifier(m.model, angles)(pixel_values=x).logits.softmax(-1).numpy() for m in members
        ]
    np.testing.assert_allclose(probs, np.mean(per_member, axis=0), rtol=1e-5, atol=1e-6)
    no_tta = ensemble.predict_proba(data["test"], tta_rotations=None, progress=False)
    assert not np.allclose(probs, no_tta)


@pytest.mark.parametrize("method", ["soft", "hard", "weighted", "stacking"])
def test_saved_ensemble_reloads_with_identical_predictions(method, member_dirs, val_preds, data, tmp_path):
    ens = GalaxyEnsemble([str(d) for d in member_dirs], method=method)
    ens.fit(val_preds, n_folds=3, seed=1)
    before = ens.predict_proba(data["test"], progress=False)
    ens.save_pretrained(tmp_path / "ens")
    assert not list((tmp_path / "ens").glob("*.pkl")) and not list((tmp_path / "ens").glob("*.bin"))
    config = json.loads((tmp_path / "ens" / ENSEMBLE_CONFIG_NAME).read_text())
    assert config["method"] == method and config["label_names"] == GZ1_CLASSES
    assert [m["name_or_path"] for m in config["members"]] == [str(d.resolve()) for d in member_dirs]
    if method == "stacking":
        meta = config["meta_learner"]
        assert np.asarray(meta["coef"]).shape == (len(GZ1_CLASSES), 3 * len(GZ1_CLASSES))
    if method == "weighted":
        assert np.isclose(sum(config["weights"]), 1.0)
    again = GalaxyEnsemble.from_pretrained(tmp_path / "ens")
    np.testing.assert_array_equal(again.predict_proba(data["test"], progress=False), before)


def test_stacking_needs_fitting_and_only_saves_logistic_regression(member_dirs, val_preds):
    from sklearn.ensemble import RandomForestClassifier

    ens = GalaxyEnsemble([str(d) for d in member_dirs], method="stacking")
    with pytest.raises(ValueError, match="call fit"):
        ens.combine(val_preds.member_probs)
    ens = GalaxyEnsemble(
        [str(d) for d in member_dirs], method="stacking", meta_learner=RandomForestClassifier(n_estimators=5)
    )
    ens.fit(val_preds, n_folds=3)
    assert ens.combine(val_preds.member_probs).shape == (len(val_preds.labels), len(GZ1_CLASSES))
    with pytest.raises(TypeError, match="only LogisticRegression"):
        ens.to_config()


def test_publish_pull_and_reload_from_the_hub(member_dirs, val_preds, data, tmp_path, monkeypatch):
    """Members from a local directory and from the Hub; the published ensemble reloads anywhere, identically."""
    from hf_galaxy.hub import GalaxyCardData, publish
    from tests.hub_helpers import loopback_hub

    run = tmp_path / "member-run"  # a copy of member 2 with the card data a recipe run would write
    shutil.copytree(member_dirs[2], run)
    GalaxyCardData(label_names=GZ1_CLASSES, eval_results={"accuracy": 0.5}).save(run)
    with loopback_hub(tmp_path / "hub", monkeypatch) as hub:
        publish(run, "tester/gz1-member")  # one member lives on the Hub
        ids = [str(member_dirs[0]), str(member_dirs[1]), "tester/gz1-member"]
        ens = GalaxyEnsemble(ids, method="weighted").fit(val_preds)
        ens.load()
        commit = ens.members[2].commit
        assert commit and len(commit) == 40  # the Hub member's resolved commit is recorded
        before = ens.predict_proba(data["test"], progress=False)
        rows = ens.evaluate(data["test"], progress=False)
        folder = ens.save_pretrained(tmp_path / "ens", results={"split": "test", "rows": rows})
        dry = publish_ensemble(folder, "tester/gz1-ensemble", dry_run_dir=tmp_path / "dry")
        assert "ensemble_config.json" in dry.files and "README.md" in dry.files
        assert sum(f.endswith("model.safetensors") for f in dry.files) == 2  # only the local members travel

        result = publish_ensemble(folder, "tester/gz1-ensemble")
        remote = set(hub.files("tester/gz1-ensemble")) - {".gitattributes"}
        assert remote == set(dry.files) == set(result.files)
        card = hub.files("tester/gz1-ensemble")["README.md"].decode()
        for name in (member_dirs[0].name, member_dirs[1].name, "tester/gz1-member", commit):
            assert name in card  # the card lists every member (and the Hub member's commit)
        assert "base_model: tester/gz1-member" in card or "- tester/gz1-member" in card
        assert "ensemble (weighted)" in card and "weighted soft voting" in card
        pulled = GalaxyEnsemble.from_pretrained("tester/gz1-ensemble")
        assert [m.name_or_path.startswith("members/") for m in pulled.members] == [True, True, False]
        assert pulled.members[2].commit == commit
        np.testing.assert_array_equal(pulled.predict_proba(data["test"], progress=False), before)


def test_bootstrap_resamples_are_recorded_and_reproducible():
    a, seed_a = _bootstrap(50, 42, 0)
    b, seed_b = _bootstrap(50, 42, 0)
    c, seed_c = _bootstrap(50, 42, 1)
    np.testing.assert_array_equal(a, b)
    assert seed_a == seed_b == [42, 0] and seed_c == [42, 1] and not np.array_equal(a, c)
    replay = np.random.default_rng(np.random.SeedSequence(seed_c)).integers(0, 50, size=50)
    np.testing.assert_array_equal(replay, c)  # the recorded seed sequence reproduces the resample
    assert len(np.unique(a)) < 50  # a bootstrap draws with replacement


@pytest.mark.slow
def test_boosting_trains_members_through_the_recipe_and_records_rounds(data, tmp_path):
    from hf_galaxy.training import DataArguments, ModelArguments, ScriptArguments

    members, prov = train_members(
        data,
        tmp_path,
        n_members=2,
        strategy="boosting",
        seed=7,
        training_args=dict(
            max_steps=25,
            learning_rate=3e-3,
            lr_scheduler_type="constant",
            per_device_train_batch_size=16,
            use_cpu=True,
            save_strategy="no",
            eval_strategy="no",
            disable_tqdm=True,
            report_to="none",
        ),
        model_args=ModelArguments(model_config=TINY_VIT),
        data_args=DataArguments(augment=False),
        script_args=ScriptArguments(num_grid_images=0),
        predict_kwargs={"progress": False},
    )
    assert prov["strategy"] == "boosting" and len(prov["rounds"]) >= 1
    assert len(prov["weights"]) == len(members) >= 1 and all(a > 0 for a in prov["weights"])
    for k, m in enumerate(members):
        assert m.spec.seed == 7 + k and m.spec.info["train_seed"] == 7 + k
        assert m.spec.info["n_unique"] <= len(data["train"]) and m.spec.info["resample_seed_sequence"] == [
            7,
            k,
            1,
        ]
        assert (tmp_path / "members" / f"member-{k}" / "model.safetensors").is_file()


@pytest.mark.slow
def test_recipe_trains_three_seeded_members_prints_the_table_and_reloads(tmp_path, capsys):
    recipe = load_recipe("ensemble")
    out = tmp_path / "ens"
    args = recipe.make_parser().parse(
        [
            "--config", str(Path(recipe.__file__).parent / "configs" / "ensemble_tiny.yaml"),
            "--dataset", "synthetic:60", "--synthetic_image_size", "32", "--model_config", TINY_VIT,
            "--method", "stacking", "--max_steps", "3", "--output_dir", str(out),
            "--data_dir", str(tmp_path / "data"), "--per_device_eval_batch_size", "16", "--disable_tqdm", "true",
        ]
    )  # fmt: skip
    results = recipe.main(*args)
    printed = capsys.readouterr().out
    table = printed[printed.index("members and ensemble on the test split") :]
    for k in range(3):
        assert f"members/member-{k}" in table
    assert "mean of members" in table and "ensemble (stacking)" in table and "macro_f1" in table
    assert "vote_rmse" in table  # synthetic GZ1 has real vote fractions
    config = json.loads((out / ENSEMBLE_CONFIG_NAME).read_text())
    assert [m["seed"] for m in config["members"]] == [42, 43, 44]
    assert [m["name_or_path"] for m in config["members"]] == [f"members/member-{k}" for k in range(3)]
    assert config["meta_learner"]["class"].endswith("LogisticRegression")

    from hf_galaxy.training import DataArguments, load_training_data

    dsd = load_training_data(
        "synthetic:60", DataArguments(synthetic_image_size=32), data_dir=tmp_path / "data", seed=42
    )
    reloaded = GalaxyEnsemble.from_pretrained(out)
    rows = reloaded.evaluate(dsd["test"], progress=False)
    assert rows == results["rows"]  # identical predictions -> identical metrics
    assert (out / "README.md").read_text().count("members/member-") >= 3
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")  # model-index named after the release, as in a model card
    assert {(r.dataset_name, r.dataset_type) for r in card.data.eval_results} == {
        ("Galaxy Zoo 1", "galaxy-zoo-1")
    }


def test_cli_ensembles_given_members_and_writes_a_dry_run(
    member_dirs, data, tmp_path, tmp_path_factory, capsys
):
    from huggingface_hub import ModelCard

    from hf_galaxy.cli import main

    saved = tmp_path / "dsd"
    data.save_to_disk(str(saved))
    out, dry = tmp_path / "out", tmp_path / "dry"
    rc = main(
        [
            "ensemble", "--members", ",".join(str(d) for d in member_dirs), "--dataset", str(saved),
            "--method", "weighted", "--output_dir", str(out), "--use_cpu", "true", "--publish_dry_run", str(dry),
        ]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "ensemble (weighted)" in printed and all(str(d) in printed for d in member_dirs)
    assert (out / ENSEMBLE_CONFIG_NAME).is_file() and (dry / ENSEMBLE_CONFIG_NAME).is_file()
    assert len(list(dry.glob("members/*/model.safetensors"))) == 3
    # the model-index names the data as a model card does (no release recorded: "Galaxy Zoo"), never the
    # local --dataset path, and no uploaded file mentions a local path
    card = ModelCard.load(dry / "README.md")
    assert {(r.dataset_name, r.dataset_type) for r in card.data.eval_results} == {
        ("Galaxy Zoo", "galaxy-zoo")
    }
    assert _files_mentioning(dry, str(tmp_path_factory.getbasetemp())) == {}
    assert json.loads((dry / RESULTS_NAME).read_text())["dataset"] == "dsd"


# --------------------------------------------------------------------------------------------- review fixes
def _files_mentioning(folder: Path, *needles: str) -> dict[str, list[str]]:
    """Every file under ``folder`` whose bytes contain one of ``needles`` -> the needles it contains."""
    from tests.hub_helpers import file_tree

    found = {}
    for name, blob in file_tree(folder).items():
        hits = [n for n in needles if n.encode() in blob]
        if hits:
            found[name] = hits
    return found


@pytest.fixture(scope="module")
def saved_ensemble(tmp_path_factory, member_dirs, val_preds) -> Path:
    """A saved weighted ensemble whose third member is a recipe-like run: card data with a private catalogue
    path and a metrics file naming local paths; its results name the local dataset folder."""
    from tests.hub_helpers import card_data

    root = tmp_path_factory.mktemp("saved-ensemble")
    run = root / "private" / "run-2"
    shutil.copytree(member_dirs[2], run)
    card = card_data()
    card.dataset["source"] = str(root / "private" / "dsd")
    card.save(run)
    (run / "test_results.json").write_text(json.dumps({"test_accuracy": 0.5, "dataset": str(root / "dsd")}))
    ens = GalaxyEnsemble([str(member_dirs[0]), str(member_dirs[1]), str(run)], method="weighted")
    ens.fit(val_preds)
    rows = [{"model": m.name_or_path, "accuracy": 0.5} for m in ens.members]
    rows += [{"model": "mean of members", "accuracy": 0.5}, {"model": "ensemble (weighted)", "accuracy": 0.6}]
    results = {
        "split": "test",
        "dataset": str(root / "private" / "dsd"),
        "dataset_info": {"release": "Galaxy Zoo 1"},
        "rows": rows,
    }
    return ens.save_pretrained(root / "ens", results=results)


def test_published_ensemble_carries_no_local_path(saved_ensemble, tmp_path, tmp_path_factory):
    """Every file of the ensemble upload (member card data and metrics, config, results, card) is free of
    local paths; the published config and results name the members as uploaded."""
    from huggingface_hub import ModelCard

    from hf_galaxy.hub import validate_card_metadata

    basetemp = str(tmp_path_factory.getbasetemp())
    assert basetemp in (saved_ensemble / "ensemble_results.json").read_text()
    dry = tmp_path / "dry"
    result = publish_ensemble(saved_ensemble, "tester/gz1-ensemble", dry_run_dir=dry)
    assert _files_mentioning(dry, basetemp, "/data/private") == {}
    assert "members/member-2-run-2/hf_galaxy_card.json" in result.files
    card_json = json.loads((dry / "members" / "member-2-run-2" / "hf_galaxy_card.json").read_text())
    assert (
        card_json["dataset"]["catalog"] == "GalaxyZoo1_DR_table2.csv"
        and card_json["dataset"]["source"] == "dsd"
    )
    assert (
        json.loads((dry / "members" / "member-2-run-2" / "test_results.json").read_text())["dataset"] == "dsd"
    )
    config = json.loads((dry / ENSEMBLE_CONFIG_NAME).read_text())
    names = [m["name_or_path"] for m in config["members"]]
    assert names == ["members/member-0-seed0", "members/member-1-seed1", "members/member-2-run-2"]
    results = json.loads((dry / RESULTS_NAME).read_text())
    assert [r["model"] for r in results["rows"]][:3] == names and results["dataset"] == "dsd"
    # the card: a Jinja template rendered and validated by the hub machinery, no library_name (no single library
    # loads an ensemble), model-index named after the release, never the local dataset path
    card = ModelCard.load(dry / "README.md")
    meta = card.data.to_dict()
    assert "library_name" not in meta
    validate_card_metadata(meta, library_required=False)
    assert {(r.dataset_name, r.dataset_type) for r in card.data.eval_results} == {
        ("Galaxy Zoo 1", "galaxy-zoo-1")
    }
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {"accuracy": 0.6}
    assert "| `members/member-2-run-2` |" in card.text and "fitted on the validation split" in card.text


def test_fitted_ensemble_is_not_scored_on_the_split_it_was_fitted_on(
    member_dirs, val_preds, test_preds, data
):
    for method in ("weighted", "stacking"):
        ens = GalaxyEnsemble([str(d) for d in member_dirs], method=method).fit(val_preds, n_folds=3)
        with pytest.raises(ValueError, match="fitted on this split"):
            ens.evaluate(val_preds)
        assert ens.evaluate(test_preds)[-1]["model"] == f"ensemble ({method})"
    ens = GalaxyEnsemble([str(d) for d in member_dirs], method="weighted").fit(
        data["validation"], progress=False
    )
    with pytest.raises(ValueError, match="fitted on this split"):
        ens.evaluate(data["validation"], progress=False)
    soft = GalaxyEnsemble([str(d) for d in member_dirs]).fit(val_preds)  # nothing fitted: allowed
    assert soft.evaluate(val_preds)[-1]["model"] == "ensemble (soft)"


def test_cli_refuses_weighted_or_stacking_without_a_test_split(member_dirs, data, tmp_path, capsys):
    from datasets import DatasetDict

    from hf_galaxy.cli import main

    saved = tmp_path / "no-test"
    DatasetDict({"train": data["train"], "validation": data["validation"]}).save_to_disk(str(saved))
    members = ",".join(str(d) for d in member_dirs)
    for method in ("weighted", "stacking"):
        out = tmp_path / method
        argv = ["ensemble", "--members", members, "--dataset", str(saved), "--method", method,
                "--output_dir", str(out), "--use_cpu", "true"]  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"--method {method} is fitted on the 'validation' split" in err and "test split" in err
        assert not (out / ENSEMBLE_CONFIG_NAME).exists()
    out = tmp_path / "soft"
    argv = ["ensemble", "--members", members, "--dataset", str(saved), "--method", "soft",
            "--output_dir", str(out), "--use_cpu", "true"]  # fmt: skip
    assert main(argv) == 0 and "on the validation split" in capsys.readouterr().out


def test_dataset_label_names_and_votes_must_match_the_members(ensemble, data):
    from datasets import ClassLabel

    test = data["test"]
    reordered = test.cast_column("label", ClassLabel(names=list(reversed(GZ1_CLASSES))))
    for call in (ensemble.predict_members, ensemble.evaluate, ensemble.fit):
        with pytest.raises(LabelMismatchError) as err:
            call(reordered, progress=False)
        msg = str(err.value)
        assert "dataset" in msg and "0: 'merger'" in msg and "0: 'elliptical'" in msg
    narrow = test.remove_columns("votes").add_column("votes", [v[:3] for v in test["votes"]])
    with pytest.raises(LabelMismatchError, match=r"'votes'.*6 classes"):
        ensemble.predict_members(narrow, progress=False)
    # predictions made on a dataset with other class names are refused too
    preds = ensemble.predict_members(test, progress=False)
    preds.class_names = list(reversed(GZ1_CLASSES))
    with pytest.raises(LabelMismatchError, match="0: 'merger'"):
        ensemble.evaluate(preds)


def test_from_pretrained_names_the_file_and_the_missing_key(saved_ensemble, tmp_path):
    for key in ("members", "method"):
        folder = tmp_path / f"no-{key}"
        folder.mkdir()
        config = json.loads((saved_ensemble / ENSEMBLE_CONFIG_NAME).read_text())
        del config[key]
        (folder / ENSEMBLE_CONFIG_NAME).write_text(json.dumps(config))
        with pytest.raises(ValueError) as err:
            GalaxyEnsemble.from_pretrained(folder, load_members=False)
        assert str(folder / ENSEMBLE_CONFIG_NAME) in str(err.value) and repr(key) in str(err.value)


def test_publish_ensemble_goes_through_the_publish_safeguards(saved_ensemble, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    from hf_galaxy.hub import PublishError
    from tests.hub_helpers import TOKEN, loopback_hub

    with loopback_hub(tmp_path / "hub", monkeypatch) as hub:
        with pytest.raises(ValueError, match="invalid revision"):
            publish_ensemble(saved_ensemble, "tester/ens", revision="bad name")
        with pytest.raises(ValueError, match="repo_id"):
            publish_ensemble(saved_ensemble, "bad//id")
        with pytest.raises(ValueError, match="inside the output directory"):
            publish_ensemble(saved_ensemble, "tester/ens", dry_run_dir=saved_ensemble / "upload")
        assert hub.requests == [] and not (saved_ensemble / "upload").exists()

        HfApi(endpoint=hub.endpoint, token=TOKEN).create_repo("tester/public-ens")
        with pytest.raises(PublishError, match="already exists and is public"):
            publish_ensemble(saved_ensemble, "tester/public-ens", private=True)
        assert set(hub.files("tester/public-ens")) == {".gitattributes"}, "nothing was pushed"

        hub.drop_next_commit = True
        with pytest.raises(PublishError, match="untouched"):
            publish_ensemble(saved_ensemble, "tester/dropped-ens")
        assert hub.dropped_commits == 1 and set(hub.files("tester/dropped-ens")) == {".gitattributes"}

        result = publish_ensemble(saved_ensemble, "tester/private-ens", private=True, revision="v1")
        assert hub.repo("tester/private-ens").private and result.revision == "v1"
        assert set(hub.files("tester/private-ens", "main")) == {".gitattributes"}
        assert set(hub.files("tester/private-ens", "v1")) - {".gitattributes"} == set(result.files)


def test_publish_ensemble_without_a_token_says_how_to_log_in(saved_ensemble, monkeypatch):
    from huggingface_hub import HfApi, constants

    from hf_galaxy.hub import PublishError

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(importlib.import_module("hf_galaxy.hub.publish"), "get_token", lambda: None)

    def no_network(*args, **kwargs):
        raise AssertionError("no request may be sent")

    monkeypatch.setattr(HfApi, "create_repo", no_network)
    with pytest.raises(PublishError, match="hf auth login"):
        publish_ensemble(saved_ensemble, "someone/ensemble", endpoint="https://huggingface.co")
