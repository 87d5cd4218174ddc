"""Galaxy Zoo DECaLS (Walmsley et al. 2022) and GZ DESI (Walmsley et al. 2023) catalogues.

Vote columns: ``<question>_<answer>_fraction`` (and, in the volunteer catalogues, the counts
``<question>_<answer>``, ``<question>_total-votes`` and ``<question>_<answer>_debiased``). The GZD-5
tree (also DR8 / DESI) or the GZD-1/2 tree is detected from the answers present. Only questions whose
every answer is present enter ``Catalog.tree``; the columns of partial questions are kept as they are.
galaxy-datasets / Hugging Face ``gz_desi`` names with a campaign suffix (``bar-dr5_weak``) are read too
(option ``campaign``). A question with counts but no fractions gets ``count / total-votes``.

Id: ``id_str``, ``iauname`` or ``dr8_id`` (the first present). Images: ``file_loc`` / ``png_loc`` /
``jpeg_loc`` (absolute, or relative to ``image_dir``; base name tried when the path does not exist),
else ``<image_dir>/<id>.<ext>`` or the galaxy-datasets sub-folders ``<iauname[:4]>/`` and ``<brickid>/``.

Integer columns that are not catalogue columns and hold small non-negative integers (``ring`` in the
Zoobot ring catalogue) become ready label columns; a 0/1 column ``X`` gets class names
``[not_X, X]``, a 0..K column gets ``[X_0, ..., X_K]``.

Options: ``fraction`` (``"fraction"`` default, or ``"debiased"``), ``tree`` (``"auto"``, ``"gzd-5"``,
``"gzd-1-2"``), ``campaign`` (``None``/``"dr5"``/``"dr8"``/``"dr12"``), ``label_columns`` (list of
columns to use as ready labels instead of the automatic choice; ``[]`` for none).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hf_galaxy.data.catalogs import _common as common
from hf_galaxy.data.catalogs.base import Catalog, CatalogError, DecisionTree, read_table, require_columns
from hf_galaxy.data.catalogs.trees import DECALS_TREES, GZD5_TREE, GZD12_TREE

FORMAT = "decals"
RELEASE = "Galaxy Zoo DECaLS"
FRACTIONS = ("fraction", "debiased")
CAMPAIGN_TREES = {"dr5": "gzd-5", "dr8": "gzd-5", "dr12": "gzd-1-2"}
ID_COLUMNS = ("id_str", "iauname", "dr8_id")
IMAGE_COLUMNS = ("file_loc", "png_loc", "jpeg_loc")
MAX_LABEL_CLASSES = 20
"""An integer column with values 0..K, K < this, may be a ready label column."""

# Catalogue columns that are never ready labels (metadata, flags, ids, survey quantities).
_NOT_LABELS = {
    "iauname", "id_str", "dr8_id", "brickid", "objid", "ra", "dec", "redshift", "elpetro_absmag_r",
    "sersic_nmgy_r", "mag_r", "petro_th50", "petro_th90", "petro_theta", "upload_group",
    "active_learning_on", "in_gzd_c", "in_gzd_ab", "wrong_size_statistic", "wrong_size_warning",
    "file_loc", "png_loc", "jpeg_loc", "subfolder", "filename", "random_selection", "dataset_name",
    "nvotes", "image_index", "index", "est_petro_th50", "ra_photoz", "dec_photoz",
}  # fmt: skip
_QUESTIONS = sorted({q.name for t in DECALS_TREES.values() for q in t.questions}, key=len, reverse=True)
_ANSWERS = {(q.name, a) for t in DECALS_TREES.values() for q in t.questions for a in q.answers}
_VOTE_RE = re.compile(
    r"^(" + "|".join(map(re.escape, _QUESTIONS)) + r")(-dr\d+)?_(total-votes|[a-z0-9-]+?)"
    r"(_fraction|_debiased|_concentration)?$"
)


def sniff(path: Path, columns: list[str]) -> bool:
    """True when a column is a GZ DECaLS/DESI vote column (``smooth-or-featured_smooth_fraction`` ...)."""
    for c in columns:
        m = _VOTE_RE.match(c)
        if m and (m.group(3) == "total-votes" or (m.group(1), m.group(3)) in _ANSWERS):
            return True
    return False


def read(
    path: Path,
    image_dir: Path | None,
    *,
    fraction: str = "fraction",
    tree: str = "auto",
    campaign: str | None = None,
    label_columns: Sequence[str] | None = None,
    **unknown: object,
) -> Catalog:
    """Read a GZ DECaLS / DESI catalogue into the canonical table."""
    common.reject_options(FORMAT, unknown, ("fraction", "tree", "campaign", "label_columns"))
    if fraction not in FRACTIONS:
        raise CatalogError(f"decals reader: fraction={fraction!r} is not one of {', '.join(FRACTIONS)}")
    if tree not in ("auto", *DECALS_TREES):
        raise CatalogError(f"decals reader: tree={tree!r} is not one of auto, {', '.join(DECALS_TREES)}")
    source = str(path)
    df = read_table(path, id_columns=(*ID_COLUMNS, "brickid", "objid"))
    df, campaign = _select_campaign(df, campaign, source)
    cols = list(df.columns)

    id_col = common.find_column(cols, *ID_COLUMNS)
    if id_col is None:
        require_columns(df, ["id_str (or iauname, dr8_id)"], source, RELEASE)
    ids = common.ids_as_strings(df[id_col], source, id_col)

    if tree == "auto":
        tree = CAMPAIGN_TREES[campaign] if campaign else _detect_tree(cols)
    full_tree = DECALS_TREES[tree]
    meta: dict[str, object] = {
        "tree_version": tree,
        "fraction": fraction,
        "id_column": id_col,
        "n_duplicate_ids": common.count_duplicate_ids(ids),
    }
    if campaign:
        meta["campaign"] = campaign

    out: dict[str, object] = {"id": ids.to_numpy(dtype=object)}
    root = common.image_root(path, image_dir)
    meta["image_dir"] = str(root)
    out["image_path"] = _image_paths(df, ids, root, meta)
    consumed = {id_col, *(c for c in IMAGE_COLUMNS if c in cols)}

    complete, computed, partial = [], [], []
    negative = np.zeros(len(df), dtype=bool)
    mismatch = np.zeros(len(df), dtype=bool)
    for q in full_tree.questions:
        frac_cols = [f"{q.name}_{a}_{fraction}" for a in q.answers]
        count_cols = [f"{q.name}_{a}" for a in q.answers]
        total_col = f"{q.name}_total-votes"
        total = common.numeric(df[total_col]) if total_col in cols else None
        if all(c in cols for c in frac_cols):
            values = pd.DataFrame(
                {f"{q.name}_{a}": common.numeric(df[c]) for a, c in zip(q.answers, frac_cols)}
            )
            complete.append(q.name)
            consumed.update(frac_cols)
            if all(
                c in cols for c in count_cols
            ):  # a volunteer table: its counts must agree with its fractions
                counts = pd.DataFrame({a: common.numeric(df[c]) for a, c in zip(q.answers, count_cols)})
                negative |= (counts < 0).any(axis=1).to_numpy()
                if fraction == "fraction":
                    row_total = total if total is not None else counts.sum(axis=1, min_count=1)
                    mismatch |= common.fractions_disagree(counts, values, row_total)
        elif fraction == "fraction" and all(c in cols for c in count_cols):
            counts = pd.DataFrame({a: common.numeric(df[c]) for a, c in zip(q.answers, count_cols)})
            if total is None:
                total = counts.sum(axis=1, min_count=1)
            negative |= (counts < 0).any(axis=1).to_numpy()
            with np.errstate(invalid="ignore", divide="ignore"):
                values = counts.div(total.where(total > 0), axis=0)
            values.columns = [f"{q.name}_{a}" for a in q.answers]
            computed.append(q.name)
        else:
            if any(c in cols for c in (*frac_cols, *count_cols)):
                partial.append(q.name)
            continue
        values = common.mask_unanswered(values, total)
        out.update({c: values[c].to_numpy() for c in values.columns})
        if total is not None:
            out[total_col] = total.to_numpy(dtype=float)
            consumed.add(total_col)
    meta["questions"] = [q.name for q in full_tree.questions if q.name in complete or q.name in computed]
    if computed:
        meta["fractions_from_counts"] = computed
    if partial:
        meta["partial_questions"] = partial

    for name, col in (
        ("ra", "ra"),
        ("dec", "dec"),
        ("redshift", "redshift"),
        ("petro_theta", "petro_theta"),
        ("petro_th50", "petro_th50"),
        ("petro_th90", "petro_th90"),
    ):
        if col in cols:
            out[name] = common.numeric(df[col]).to_numpy()
            consumed.add(col)
    if "petro_th50" in out and "petro_th90" in out:
        th50, th90 = out["petro_th50"], out["petro_th90"]
        # Walmsley et al. 2022 eq. 1: scale of the 424 x 424 volunteer cut-out.
        out["pixel_scale"] = np.maximum(np.minimum(0.04 * th50, 0.02 * th90), 0.1)
        out["radius_arcsec"] = th90
        meta["pixel_scale"] = "max(min(0.04 petro_th50, 0.02 petro_th90), 0.1) arcsec/px for 424 px cut-outs"
        meta["radius_arcsec"] = "petro_th90 (NSA r-band Petrosian 90% light radius)"
    if "wrong_size_warning" in cols:
        out["wrong_size_warning"] = df["wrong_size_warning"].map(_as_bool).to_numpy(dtype=object)
        consumed.add("wrong_size_warning")
        meta["n_wrong_size_warning"] = int(sum(v is True for v in out["wrong_size_warning"]))

    for c in cols:
        if c in consumed:
            continue
        m = _VOTE_RE.match(c)
        if m and not m.group(2) and not m.group(4) and (m.group(1), m.group(3)) in _ANSWERS:
            out[f"{c}_count"] = df[c].to_numpy()  # a raw vote count: never shadow a canonical fraction
        elif c not in out:
            out[c] = df[c].to_numpy()

    table = pd.DataFrame(out)
    labels = _label_columns(df, label_columns, consumed, source)
    class_names = {c: _class_names(c, df[c]) for c in labels}
    for c in labels:
        table[c] = pd.to_numeric(df[c]).astype("int64").to_numpy()
    bad = {"vote count negative": negative, "fractions do not match the counts": mismatch & ~negative}
    dropped = [(str(ids.iat[i]), reason) for reason, mask in bad.items() for i in np.flatnonzero(mask)]
    if dropped:
        table = table.loc[~(negative | mismatch)].reset_index(drop=True)

    restricted: DecisionTree | None = full_tree.restrict(list(table.columns))
    if restricted is not None and not restricted.questions:
        restricted = None
    return Catalog(
        table=table,
        release="Galaxy Zoo DESI" if campaign == "dr8" or id_col == "dr8_id" else RELEASE,
        source=source,
        tree=restricted,
        label_columns=tuple(labels),
        class_names=class_names,
        meta=meta,
        dropped=dropped,
    )


def _select_campaign(df: pd.DataFrame, campaign: str | None, source: str) -> tuple[pd.DataFrame, str | None]:
    """Strip a galaxy-datasets campaign suffix (``-dr5``) from the chosen campaign's vote columns."""
    found = sorted({m.group(2)[1:] for c in df.columns if (m := _VOTE_RE.match(c)) and m.group(2)})
    if campaign is None:
        plain = any((m := _VOTE_RE.match(c)) and not m.group(2) for c in df.columns)
        if plain or not found:
            return df, None
        if len(found) > 1:
            raise CatalogError(
                f"{source}: vote columns of several campaigns ({', '.join(found)}); pass campaign=... "
                "to choose one"
            )
        campaign = found[0]
    if campaign not in CAMPAIGN_TREES:
        raise CatalogError(f"decals reader: campaign={campaign!r} is not one of {', '.join(CAMPAIGN_TREES)}")
    if campaign not in found:
        raise CatalogError(f"{source}: no vote columns with suffix -{campaign}; suffixes found: {found}")
    rename = {}
    for c in df.columns:
        m = _VOTE_RE.match(c)
        if m and m.group(2) == f"-{campaign}":
            rename[c] = c.replace(f"{m.group(1)}-{campaign}_", f"{m.group(1)}_", 1)
    return df.rename(columns=rename), campaign


def _detect_tree(columns: Sequence[str]) -> str:
    """``gzd-5`` or ``gzd-1-2`` from the answers present (ties, e.g. shared answers only: ``gzd-5``)."""
    present = set()
    for c in columns:
        m = _VOTE_RE.match(c)
        if m and not m.group(2):
            present.add((m.group(1), m.group(3)))

    def answers(t: DecisionTree) -> set[tuple[str, str]]:
        return {(q.name, a) for q in t.questions for a in q.answers}

    only5 = answers(GZD5_TREE) - answers(GZD12_TREE)
    only12 = answers(GZD12_TREE) - answers(GZD5_TREE)
    return "gzd-1-2" if len(present & only12) > len(present & only5) else "gzd-5"


def _image_paths(df: pd.DataFrame, ids: pd.Series, root: Path, meta: dict) -> np.ndarray:
    loc = common.find_column(df.columns, *IMAGE_COLUMNS)
    if loc is not None:
        meta["image_column"] = loc
        return common.resolve_listed_paths(df[loc], root)
    finder = common.ImageFinder(root)
    brick = common.find_column(df.columns, "brickid")
    bricks = df[brick].astype(str).tolist() if brick else [None] * len(df)
    paths = []
    for gid, b in zip(ids, bricks):
        subs = [gid[:4]]
        if b is not None:
            subs.append(b)
        elif "_" in gid:
            subs.append(gid.split("_", 1)[0])
        paths.append(finder.find(gid, subs))
    return np.array(paths, dtype=object)


def _as_bool(v: object) -> bool | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes", "t")
    return bool(v)


def _label_columns(
    df: pd.DataFrame, requested: Sequence[str] | None, consumed: set[str], source: str
) -> list[str]:
    if requested is not None:
        labels = list(requested)
        require_columns(df, labels, source, RELEASE)
        for c in labels:
            v = pd.to_numeric(df[c], errors="coerce")
            if v.isna().any() or (v < 0).any() or (v != v.round()).any():
                raise CatalogError(f"{source}: label column {c!r} must hold non-negative integers")
        return labels
    labels = []
    for c in df.columns:
        if c in consumed or c.lower() in _NOT_LABELS or c.lower().startswith(("unnamed", "index")):
            continue
        if _VOTE_RE.match(c) or not pd.api.types.is_integer_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            continue
        v = df[c]
        if len(v) == 0 or v.min() < 0 or v.max() >= MAX_LABEL_CLASSES or v.nunique() < 2:
            continue
        if v.max() > 1 and v.nunique() == len(v):
            continue  # 0..N-1 with no repeats: a row index, not a class
        labels.append(c)
    return labels


def _class_names(column: str, values: pd.Series) -> list[str]:
    top = int(pd.to_numeric(values).max())
    if top <= 1:
        return [f"not_{column}", column]
    return [f"{column}_{k}" for k in range(top + 1)]
