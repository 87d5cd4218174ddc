"""A tiny Hub dataset repo in the layout of the mwalmsley Galaxy Zoo datasets (``mwalmsley/gz2`` and friends).

Layout (formats doc section 4.4, ``-gz2`` ortho names of section 2.6)::

    README.md                              YAML front matter: ``configs`` (data_files per split) + ``dataset_info``
    data/train-00000-of-00001.parquet      config ``default``
    data/test-00000-of-00001.parquet
    tiny/train-00000-of-00001.parquet      config ``tiny`` (the first rows of each ``default`` split)
    tiny/test-00000-of-00001.parquet

Columns: ``image`` (``datasets.Image()``, JPEG bytes embedded), ``id_str`` (string), ``dataset_name``
(``"gz2"``), ``ra``, ``dec`` (float64), then per GZ2 question ``q`` (task 08 ``odd-feature`` is dropped, as
galaxy-datasets does): ``{q}-gz2_{a}`` (int32 count per answer), ``{q}-gz2_total-votes`` (int32) and
``{q}-gz2_{a}_fraction`` (float32, ``count / total``; NaN, or null with ``missing_fraction="null"``, where the
question got no votes).

The images are REAL: the Kaggle GZ2 cut-outs in ``tests/fixtures/real/gz2_kaggle/{spiral,non_spiral}``
(see ``tests/fixtures/real/PROVENANCE.md``); ``id_str`` is their Kaggle GalaxyID. Everything else is MADE UP
for layout tests: the vote counts are drawn (seeded) down the GZ2 tree, consistently with the folder
(spiral: mostly featured, not edge-on, spiral arms; non_spiral: mostly smooth), with every child question's
total equal to its parent answer's count and 20-60 volunteers per galaxy; ``ra``/``dec`` are random too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from hf_galaxy.data.catalogs.base import Question
from hf_galaxy.data.catalogs.trees import GZ2_TREE

FIXTURE_IMAGES = Path(__file__).parent / "fixtures" / "real" / "gz2_kaggle"
REPO_ID = "someone/gz2-tiny"
SUFFIX = "-gz2"
#: The GZ2 questions the mwalmsley/gz2 columns cover: every one but task 08 (formats doc section 2.6).
HUB_QUESTIONS: tuple[Question, ...] = tuple(q for q in GZ2_TREE.questions if q.name != "odd-feature")
CONFIG_DIRS = {"default": "data", "tiny": "tiny"}
SPLITS = ("train", "test")

#: Answer probabilities per image folder (questions not listed draw theirs from a flat Dirichlet).
_ANSWER_P: dict[str, dict[str, tuple[float, ...]]] = {
    "spiral": {
        "smooth-or-featured": (0.12, 0.85, 0.03),
        "disk-edge-on": (0.08, 0.92),
        "has-spiral-arms": (0.88, 0.12),
        "something-odd": (0.15, 0.85),
    },
    "non_spiral": {
        "smooth-or-featured": (0.85, 0.12, 0.03),
        "disk-edge-on": (0.4, 0.6),
        "has-spiral-arms": (0.15, 0.85),
        "something-odd": (0.1, 0.9),
    },
}


def count_column(q: Question, a: str) -> str:
    return f"{q.name}{SUFFIX}_{a}"


def total_column(q: Question) -> str:
    return f"{q.name}{SUFFIX}_total-votes"


def fraction_column(q: Question, a: str) -> str:
    return f"{q.name}{SUFFIX}_{a}_fraction"


def vote_columns() -> list[str]:
    """Every vote column (counts, total, fractions per question) in file order."""
    cols: list[str] = []
    for q in HUB_QUESTIONS:
        cols += [count_column(q, a) for a in q.answers]
        cols.append(total_column(q))
        cols += [fraction_column(q, a) for a in q.answers]
    return cols


def gz2_features():
    """The ``datasets.Features`` of every split and config."""
    from datasets import Features, Image, Value

    features: dict[str, Any] = {
        "image": Image(),
        "id_str": Value("string"),
        "dataset_name": Value("string"),
        "ra": Value("float64"),
        "dec": Value("float64"),
    }
    for col in vote_columns():
        features[col] = Value("float32" if col.endswith("_fraction") else "int32")
    return Features(features)


def draw_votes(kind: str, rng: np.random.Generator) -> dict[str, int]:
    """Made-up GZ2 counts for one galaxy of folder ``kind``: ``{count column or total column: n}``."""
    probs = _ANSWER_P[kind]
    n_volunteers = int(rng.integers(20, 61))
    counts: dict[str, dict[str, int]] = {}
    out: dict[str, int] = {}
    for q in HUB_QUESTIONS:  # parents come before children in GZ2_TREE
        if q.parent is None:
            total = n_volunteers
        else:
            parent_q, parent_a = q.parent
            parent = counts[parent_q]
            if parent_a.startswith("!"):
                total = sum(n for a, n in parent.items() if a != parent_a[1:])
            else:
                total = parent[parent_a]
        p = probs.get(q.name) or tuple(rng.dirichlet(np.ones(len(q.answers))))
        drawn = rng.multinomial(total, p)
        counts[q.name] = dict(zip(q.answers, (int(n) for n in drawn)))
        out.update({count_column(q, a): n for a, n in counts[q.name].items()})
        out[total_column(q)] = total
    return out


def _fractions(votes: dict[str, int], missing: float | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for q in HUB_QUESTIONS:
        total = votes[total_column(q)]
        for a in q.answers:
            out[fraction_column(q, a)] = votes[count_column(q, a)] / total if total else missing
    return out


def gz2_rows(*, seed: int = 0, missing_fraction: Literal["nan", "null"] = "nan") -> list[dict[str, Any]]:
    """One row per fixture image, spiral and non_spiral interleaved (so any prefix mixes both)."""
    rng = np.random.default_rng(seed)
    missing = None if missing_fraction == "null" else float("nan")
    folders = {kind: sorted((FIXTURE_IMAGES / kind).glob("*.jpg")) for kind in ("spiral", "non_spiral")}
    rows = []
    for pair in zip(folders["spiral"], folders["non_spiral"]):
        for path in pair:
            kind = path.parent.name
            votes = draw_votes(kind, rng)
            row: dict[str, Any] = {
                "image": {"bytes": path.read_bytes(), "path": path.name},
                "id_str": path.stem,
                "dataset_name": "gz2",
                "ra": float(rng.uniform(0, 360)),
                "dec": float(rng.uniform(-10, 60)),
            }
            row.update(votes)
            row.update(_fractions(votes, missing))
            rows.append(
                {col: row[col] for col in ["image", "id_str", "dataset_name", "ra", "dec", *vote_columns()]}
            )
    return rows


def split_rows(n_tiny: int | None = None, *, seed: int = 0, missing_fraction: Literal["nan", "null"] = "nan"):
    """``{config: {split: rows}}``: default = 12 train + 4 test rows; tiny = the first ``n_tiny`` (default 4)
    train rows and the first ``max(1, n_tiny // 2)`` test rows of default."""
    rows = gz2_rows(seed=seed, missing_fraction=missing_fraction)
    default = {"train": rows[:12], "test": rows[12:]}
    n = 4 if n_tiny is None else n_tiny
    if not 1 <= n <= len(default["train"]):
        raise ValueError(f"n_tiny must be in 1..{len(default['train'])}, got {n}")
    tiny = {"train": default["train"][:n], "test": default["test"][: max(1, n // 2)]}
    return {"default": default, "tiny": tiny}


def _readme(infos: dict[str, Any]) -> str:
    from datasets import DatasetInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    card_data = DatasetCardData(license="cc-by-nc-sa-4.0", pretty_name="GZ2 (tiny loopback fixture)")
    MetadataConfigs(
        {
            name: {"data_files": [{"split": s, "path": f"{folder}/{s}-*"} for s in SPLITS]}
            for name, folder in CONFIG_DIRS.items()
        }
    ).to_dataset_card_data(card_data)
    DatasetInfosDict(
        {name: info for name, info in infos.items() if isinstance(info, DatasetInfo)}
    ).to_dataset_card_data(card_data)
    body = (
        "# GZ2 tiny (test fixture)\n\nReal Kaggle GZ2 images with MADE-UP vote counts, in the layout of "
        "`mwalmsley/gz2`, for offline tests of Hub dataset loading.\n"
    )
    return DatasetCard.from_template(card_data, template_str="---\n{{ card_data }}\n---\n\n" + body).content


def make_gz2_dataset_repo(
    folder: Path,
    *,
    n_tiny: int | None = None,
    seed: int = 0,
    missing_fraction: Literal["nan", "null"] = "nan",
) -> Path:
    """Write the repo (README.md + 4 parquet files, see the module docstring) under ``folder``; returns it."""
    from datasets import Dataset, DatasetInfo, SplitDict, SplitInfo

    folder = Path(folder)
    features = gz2_features()
    infos: dict[str, Any] = {}
    for config, splits in split_rows(n_tiny, seed=seed, missing_fraction=missing_fraction).items():
        split_dict = SplitDict(dataset_name="gz2-tiny")
        for split, rows in splits.items():
            ds = Dataset.from_list(rows, features=features)
            path = folder / CONFIG_DIRS[config] / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(path))
            split_dict.add(SplitInfo(name=split, num_bytes=ds.data.nbytes, num_examples=len(ds)))
        infos[config] = DatasetInfo(features=features, splits=split_dict, config_name=config)
    (folder / "README.md").write_text(_readme(infos), encoding="utf-8")
    return folder


def push_gz2_dataset_repo(
    endpoint: str,
    folder: Path,
    *,
    repo_id: str = REPO_ID,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload the GZ2 tiny fixture",
) -> str:
    """Create the dataset repo on the (loopback) Hub at ``endpoint`` and upload ``folder``; returns the commit id."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type="dataset",
        revision=revision,
        commit_message=commit_message,
    )
    return info.oid
