"""Keep machine-local paths out of everything that is published.

Training records paths (the catalogue, the dataset source, a local base model, a member checkpoint) in
``hf_galaxy_card.json``, metrics files and ensemble results. Those files are useful locally, but their published
copies must not reveal the publisher's file system. :func:`strip_local_paths` reduces every string value that is
a local path to its base name; :func:`clean_json_files` applies it to the JSON files of an upload set, writing
cleaned copies into the staging folder (the originals are never modified).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

#: File suffixes that make a relative ``a/b.ext`` string a path rather than a Hub id.
_PATH_SUFFIXES = (
    ".csv", ".tsv", ".txt", ".fits", ".fit", ".fz", ".parquet", ".arrow", ".json", ".jsonl", ".yaml", ".yml",
    ".h5", ".hdf5", ".npy", ".npz", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".safetensors", ".bin", ".pt",
    ".pth", ".ckpt", ".zip", ".tar", ".gz", ".bz2", ".xz",
)  # fmt: skip
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_SEPARATORS = re.compile(r"[\\/]+")


def looks_like_local_path(value: str) -> bool:
    """True when the string ``value`` is a local file-system path rather than a name, Hub id or URL.

    Absolute paths (``/...``, ``~/...``, ``C:\\...``), explicitly relative ones (``./``, ``../``) and anything with
    a backslash count as paths; a string with a ``/`` counts when it exists locally, has more than one ``/``
    (a Hub id has exactly one) or ends with a data-file suffix such as ``.csv`` or ``.fits``. URLs never do.
    """
    if not isinstance(value, str) or not value or "\n" in value or len(value) > 4096 or "://" in value:
        return False
    if (
        value.startswith(("/", "~", "./", "../", ".\\", "..\\"))
        or _WINDOWS_DRIVE.match(value)
        or "\\" in value
    ):
        return True
    if "/" not in value:
        return False
    if value.count("/") > 1 or value.lower().endswith(_PATH_SUFFIXES):
        return True
    try:
        return os.path.exists(value)
    except (OSError, ValueError):
        return False


def basename(value: str) -> str:
    """The last component of a POSIX or Windows path (``"/data/x/cat.csv"`` -> ``"cat.csv"``)."""
    parts = [p for p in _SEPARATORS.split(value) if p and p not in (".", "..", "~")]
    return parts[-1] if parts else ""


def strip_local_paths(value: Any, *, keep: Callable[[tuple[str, ...]], bool] | None = None) -> Any:
    """``value`` (JSON data) with every string that :func:`looks_like_local_path` reduced to its base name.

    Args:
        value: JSON-like data (dicts, lists, strings, numbers).
        keep: Called with the key path of a string (e.g. ``("members", "0", "name_or_path")``); when it returns
            True the string is left as it is.
    """

    def walk(item: Any, where: tuple[str, ...]) -> Any:
        if isinstance(item, dict):
            return {k: walk(v, (*where, str(k))) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, (*where, str(i))) for i, v in enumerate(item)]
        if isinstance(item, str) and looks_like_local_path(item) and not (keep is not None and keep(where)):
            return basename(item)
        return item

    return walk(value, ())


def find_local_paths(value: Any) -> list[str]:
    """Every string in JSON data ``value`` that :func:`looks_like_local_path` (for error messages and tests)."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in find_local_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in find_local_paths(v)]
    return [value] if isinstance(value, str) and looks_like_local_path(value) else []


def clean_json_file(src: Path, dst: Path, *, keep: Callable[[tuple[str, ...]], bool] | None = None) -> bool:
    """Write ``src`` with its local paths stripped to ``dst`` when that changes anything; return whether it did.

    Raises:
        ValueError: ``src`` is not valid JSON (it could not be checked for paths).
    """
    try:
        data = json.loads(Path(src).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{src} is not valid JSON, so it cannot be checked for local paths: {err}") from err
    cleaned = strip_local_paths(data, keep=keep)
    if cleaned == data:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(cleaned, indent=2) + "\n", encoding="utf-8")
    return True


def clean_json_files(files: dict[str, Path], staging: Path, *, skip: Iterable[str] = ()) -> dict[str, Path]:
    """The upload set ``files`` (path in repo -> local file) with every ``*.json`` file's local paths stripped.

    Files that need cleaning are rewritten under ``staging/_clean/<path in repo>`` (files already in
    ``staging`` are rewritten in place); the others keep their source. Paths in ``skip`` are left alone.
    """
    skipped = set(skip)
    out = dict(files)
    staging = Path(staging).resolve()
    for path_in_repo, src in files.items():
        if not path_in_repo.endswith(".json") or path_in_repo in skipped:
            continue
        src = Path(src)
        in_staging = staging in src.resolve().parents
        dst = src if in_staging else staging / "_clean" / path_in_repo
        if clean_json_file(src, dst):
            out[path_in_repo] = dst
    return out
