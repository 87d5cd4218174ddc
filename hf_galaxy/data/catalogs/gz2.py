"""Galaxy Zoo 2 (Willett et al. 2013; Hart et al. 2016): ``gz2_hart16.csv`` and tables with its grammar.

Columns: ``dr7objid`` (or ``objid`` in the Stripe 82 coadd tables), ``ra``, ``dec``, ``rastring``,
``decstring``, ``sample``, ``gz2_class``, ``total_classifications``, ``total_votes``, then for each of
the 37 answers ``t{TT}_{task}_a{AA}_{answer}_{count,weight,fraction,weighted_fraction,debiased,flag}``.

Options:

* ``fraction``: which statistic becomes the canonical ``<question>_<answer>`` column: ``"fraction"``
  (raw vote fraction, default), ``"weighted_fraction"`` (user-weighted) or ``"debiased"``.
* ``mapping``: path of ``gz2_filename_mapping.csv`` (``objid, sample, asset_id``) from Zenodo 3565489;
  images are then ``<image_dir>/<asset_id>.jpg`` and rows without a mapping entry are dropped and
  listed in ``Catalog.dropped``. Without it, images are ``<image_dir>/<dr7objid>.jpg`` (or the
  galaxy-datasets layout ``<image_dir>/<first 6 digits>/<dr7objid>.jpg``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from hf_galaxy.data.catalogs import _common as common
from hf_galaxy.data.catalogs.base import Catalog, CatalogError, read_table, require_columns
from hf_galaxy.data.catalogs.trees import GZ2_NATIVE, GZ2_TREE

FORMAT = "gz2"
RELEASE = "Galaxy Zoo 2"
FRACTIONS = ("fraction", "weighted_fraction", "debiased")
_ROOT_PREFIX = GZ2_NATIVE[0][0]  # t01_smooth_or_features_a01_smooth


_ORTHO = "-gz2"


def sniff(path: Path, columns: list[str]) -> bool:
    """True for GZ2 task-01 answer columns (``t01_smooth_or_features_a01_smooth_*``, or galaxy-datasets'
    ``smooth-or-featured-gz2_*``)."""
    return any(c.lower().startswith((_ROOT_PREFIX + "_", f"smooth-or-featured{_ORTHO}_")) for c in columns)


def read(
    path: Path,
    image_dir: Path | None,
    *,
    fraction: str = "fraction",
    mapping: str | os.PathLike | None = None,
    **unknown: object,
) -> Catalog:
    """Read a GZ2 table into the canonical table (GZ2 tree, ortho question slugs)."""
    common.reject_options(FORMAT, unknown, ("fraction", "mapping"))
    if fraction not in FRACTIONS:
        raise CatalogError(f"gz2 reader: fraction={fraction!r} is not one of {', '.join(FRACTIONS)}")
    source = str(path)
    df = read_table(path, id_columns=("dr7objid", "objid", "dr8objid"))
    df.columns = [c.lower() if c.lower().startswith("t") and c[1:3].isdigit() else c for c in df.columns]
    cols = list(df.columns)
    if not any(c.startswith(_ROOT_PREFIX + "_") for c in cols) and any(_ORTHO + "_" in c for c in cols):
        if mapping is not None:
            raise CatalogError(
                f"{source}: mapping= applies to gz2_hart16-style tables, not galaxy-datasets ones"
            )
        if fraction != "fraction":
            raise CatalogError(
                f"{source}: galaxy-datasets GZ2 catalogues have raw fractions only, not {fraction!r}"
            )
        return _read_ortho(path, df, image_dir)

    id_col = common.find_column(cols, "dr7objid", "objid")
    if id_col is None:
        require_columns(df, ["dr7objid"], source, RELEASE)
    required = [f"{prefix}_{fraction}" for prefix, _, _ in GZ2_NATIVE]
    require_columns(df, required, source, f"{RELEASE} (fraction={fraction!r})")
    has_counts = all(f"{prefix}_count" in cols for prefix, _, _ in GZ2_NATIVE)

    ids = common.ids_as_strings(df[id_col], source, id_col)
    out: dict[str, object] = {"id": ids.to_numpy(dtype=object)}
    meta: dict[str, object] = {
        "tree_version": GZ2_TREE.name,
        "fraction": fraction,
        "id_column": id_col,
        "n_duplicate_ids": common.count_duplicate_ids(ids),
    }
    dropped: list[tuple[str, str]] = []
    root = common.image_root(path, image_dir)
    meta["image_dir"] = str(root)
    finder = common.ImageFinder(root)
    keep = np.ones(len(df), dtype=bool)

    if mapping is not None:
        assets = _read_mapping(Path(mapping))
        sample_col = common.find_column(cols, "sample")
        samples = df[sample_col].astype("string").fillna("").tolist() if sample_col else [""] * len(df)
        paths = []
        for i, (gid, sample) in enumerate(zip(ids, samples)):
            options = assets.get(gid)
            if not options:
                keep[i] = False
                dropped.append((gid, f"no asset_id in mapping {mapping}"))
                paths.append(None)
                continue
            asset = next((a for s, a in options if s == sample), options[0][1])
            paths.append(finder.find(asset))
        meta["mapping"] = str(mapping)
        meta["n_no_mapping"] = len(dropped)
    else:
        paths = [finder.find(gid, (gid[:6],)) for gid in ids]
    out["image_path"] = np.array(paths, dtype=object)

    radec = common.radec_degrees(df, source, ("rastring", "decstring"), ("ra", "dec"))
    if radec is not None:
        out["ra"], out["dec"], meta["coordinates"] = radec

    for question in GZ2_TREE.questions:
        natives = [p for p, q, _ in GZ2_NATIVE if q == question.name]
        values = pd.DataFrame(
            {
                f"{question.name}_{a}": common.numeric(df[f"{p}_{fraction}"]).to_numpy()
                for p, a in zip(natives, question.answers)
            }
        )
        total = None
        if has_counts:
            total = pd.concat([common.numeric(df[f"{p}_count"]) for p in natives], axis=1).sum(
                axis=1, min_count=1
            )
        values = common.mask_unanswered(values, total)
        out.update({c: values[c].to_numpy() for c in values.columns})
        if total is not None:
            out[f"{question.name}_total-votes"] = total.to_numpy(dtype=float)

    if (c := common.find_column(cols, "total_classifications")) is not None:
        out["nvotes"] = common.numeric(df[c]).to_numpy()
    for name in ("total_votes", "sample", "gz2_class", "dr8objid"):
        if (c := common.find_column(cols, name)) is not None:
            out[name] = df[c].to_numpy()
    for prefix, q, a in GZ2_NATIVE:
        for stat in ("count", "flag"):
            if f"{prefix}_{stat}" in cols:
                out[f"{q}_{a}_{stat}"] = common.numeric(df[f"{prefix}_{stat}"]).to_numpy()

    if (
        c := common.find_column(cols, "split")
    ) is not None:  # the catalogue's own train/validation/test split
        out["split"] = df[c].to_numpy(dtype=object)
    table = pd.DataFrame(out)
    table = table[keep].reset_index(drop=True)
    return Catalog(
        table=table,
        release=RELEASE,
        source=source,
        tree=GZ2_TREE,
        dropped=dropped,
        meta=meta,
    )


def _read_mapping(path: Path) -> dict[str, list[tuple[str, str]]]:
    """``objid -> [(sample, asset_id), ...]`` from ``gz2_filename_mapping.csv``."""
    m = read_table(path, id_columns=("objid", "asset_id"))
    require_columns(m, ["objid", "asset_id"], str(path), "gz2_filename_mapping")
    samples = m["sample"].astype("string").fillna("") if "sample" in m else pd.Series([""] * len(m))
    assets = m["asset_id"].map(_asset_str)
    out: dict[str, list[tuple[str, str]]] = {}
    for objid, sample, asset in zip(m["objid"], samples, assets):
        if objid is None or asset is None:
            continue
        out.setdefault(objid, []).append((str(sample), asset))
    return out


def _asset_str(v: object) -> str | None:
    """``16``, ``"16"`` and ``"16.0"`` all name ``16.jpg``; empty cells give None."""
    if v is None:
        return None
    text = str(v).strip()
    if not text or text.lower() == "nan":
        return None
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    return text


def _read_ortho(path: Path, df: pd.DataFrame, image_dir: Path | None) -> Catalog:
    """galaxy-datasets GZ2 catalogues (``gz2_train_catalog.parquet``): ``id_str``, ``file_loc``,
    ``<question>-gz2_<answer>`` counts, ``..._fraction`` and ``<question>-gz2_total-votes``.

    Task 08 (odd feature) is not in these catalogues, so the tree is restricted to the other ten.
    """
    source = str(path)
    cols = list(df.columns)
    id_col = common.find_column(cols, "id_str", "dr7objid")
    if id_col is None:
        require_columns(df, ["id_str"], source, f"{RELEASE} (galaxy-datasets)")
    ids = common.ids_as_strings(df[id_col], source, id_col)
    root = common.image_root(path, image_dir)
    out: dict[str, object] = {"id": ids.to_numpy(dtype=object)}
    loc = common.find_column(cols, "file_loc")
    if loc is not None:
        out["image_path"] = common.resolve_listed_paths(df[loc], root)
    else:
        finder = common.ImageFinder(root)
        out["image_path"] = np.array([finder.find(g, (g[:6],)) for g in ids], dtype=object)
    consumed = {id_col, "file_loc"}
    used, computed, bad = common.ortho_votes(
        df, [(f"{q.name}{_ORTHO}", q.name, q) for q in GZ2_TREE.questions], out
    )
    consumed |= used
    for c in ("ra", "dec"):
        if c in cols:
            out[c] = common.numeric(df[c]).to_numpy()
            consumed.add(c)
    for c in cols:
        if c not in consumed and c not in out:
            out[c] = df[c].to_numpy()
    out, dropped = common.drop_rows(out, bad, ids.to_numpy())
    table = pd.DataFrame(out)
    tree = GZ2_TREE.restrict(list(table.columns))
    meta: dict[str, object] = {
        "tree_version": GZ2_TREE.name,
        "fraction": "fraction",
        "layout": "galaxy-datasets (-gz2 columns)",
        "id_column": id_col,
        "image_dir": str(root),
        "questions": [q.name for q in tree.questions],
        "n_duplicate_ids": common.count_duplicate_ids(ids),
    }
    if computed:
        meta["fractions_from_counts"] = computed
    return Catalog(table=table, release=RELEASE, source=source, tree=tree, meta=meta, dropped=dropped)
