"""The recipes' data step: ``--dataset`` (catalogue, image folder, saved DatasetDict, COCO folder or
``synthetic:N``) -> the classification or detection ``DatasetDict`` a run trains on."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hf_galaxy.training.arguments import DataArguments, DatasetArguments, DetectionDataArguments

logger = logging.getLogger(__name__)


def load_training_data(
    dataset: str | None,
    data_args: DatasetArguments | None = None,
    *,
    output_dir: str | os.PathLike = ".",
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> Any:
    """Load ``dataset``: ``synthetic:N``, a ``save_to_disk`` DatasetDict directory, or a catalogue/image folder.

    A catalogue (or image folder) is split with ``data_args.split_seed``, not with ``seed``, so a trained
    model and ``hf-galaxy evaluate`` / ``prepare`` / :func:`load_galaxy_dataset` agree on the test galaxies.
    ``seed`` is the seed of the ``synthetic:N`` catalogue generation (the training runs pass their ``--seed``).
    """
    from datasets import DatasetDict

    from hf_galaxy.data.dataset import load_galaxy_dataset

    data_args = data_args or DataArguments()
    if not dataset:
        raise ValueError(
            "--dataset is required: a catalogue file, an image folder, a saved DatasetDict, or synthetic:N for "
            "procedural galaxies"
        )
    kwargs = data_args.loader_kwargs()
    if dataset.startswith("synthetic:"):
        from hf_galaxy.data.synthetic import make_galaxy_zoo

        try:
            n = int(dataset.split(":", 1)[1])
        except ValueError as err:
            raise ValueError(f"--dataset {dataset!r}: expected synthetic:N with an integer N") from err
        logger.warning(
            "--dataset %s: training on %d SYNTHETIC galaxies (procedural cut-outs, not real Galaxy Zoo data); "
            "pass --dataset CATALOG_OR_FOLDER for real data",
            dataset,
            n,
        )
        folder = Path(data_dir or Path(output_dir) / "synthetic_data")
        if kwargs.get("label_scheme") == "tree":  # whole-tree vote counts in a GZ DECaLS or GZ2 layout
            tree = data_args.synthetic_tree
            zoo = make_galaxy_zoo(folder, n, seed=seed, image_size=data_args.synthetic_image_size, tree=tree)
            dsd = load_galaxy_dataset(zoo.tree_catalog_path, zoo.out_dir, **kwargs)
        else:
            zoo = make_galaxy_zoo(folder, n, seed=seed, image_size=data_args.synthetic_image_size)
            dsd = load_galaxy_dataset(zoo.catalog_path, zoo.image_dir, **kwargs)
        dsd.galaxy_info["synthetic"] = True  # the model card says so
        return dsd
    path = Path(dataset).expanduser()
    if path.is_dir() and (path / "dataset_dict.json").is_file():
        return DatasetDict.load_from_disk(str(path))
    from hf_galaxy.data.hub import is_embedded

    if not path.exists() and not is_embedded(dataset):
        raise FileNotFoundError(
            f"--dataset {dataset}: no such file or directory (expected a catalogue, an image folder, a "
            "saved DatasetDict, a Hub dataset id such as mwalmsley/gz2, or synthetic:N)"
        )
    return load_galaxy_dataset(path, data_args.image_dir, **kwargs)


def _find_coco(path: Path) -> dict[str, Path]:
    folder = path / "annotations" if (path / "annotations").is_dir() else path
    found = {}
    for f in sorted(folder.glob("instances_*.json")):
        found[f.stem[len("instances_") :]] = f
    return found


def load_detection_data(
    dataset: str,
    data_args: DetectionDataArguments | None = None,
    *,
    output_dir: str | Path = ".",
    data_dir: str | Path | None = None,
    seed: int = 0,
) -> Any:
    """The detection ``DatasetDict`` for ``--dataset`` (see :class:`DetectionScriptArguments`), with mosaics.

    The result carries ``galaxy_info`` (the loader's facts, see :func:`hf_galaxy.data.dataset.describe`, plus the
    detection categories, box source, object counts, ``synthetic`` for ``synthetic:N`` and ``mosaics``: the
    number of mosaic fields per split, empty without mosaics) for the model card.
    """
    from datasets import DatasetDict, concatenate_datasets

    from hf_galaxy.data.detection import detection_card_facts, load_coco, make_mosaics, to_detection

    args = data_args or DetectionDataArguments()
    if not dataset:
        raise ValueError(
            "--dataset is required: synthetic:N, a catalogue, an image folder, a COCO folder or a "
            "saved DatasetDict"
        )
    path = Path(dataset).expanduser()
    coco = _find_coco(path) if path.is_dir() else {}
    if coco:
        dsd = DatasetDict({name: load_coco(f, path, keep_empty=args.keep_empty) for name, f in coco.items()})
    elif path.is_file() and path.suffix == ".json":
        dsd = DatasetDict({"train": load_coco(path, keep_empty=args.keep_empty)})
    else:
        dsd = load_training_data(dataset, args, output_dir=output_dir, data_dir=data_dir, seed=seed)
        first = next(iter(dsd.values()))
        if "objects" not in first.column_names:
            dsd = to_detection(dsd, catalog=path if path.is_file() else None, **args.box_kwargs())
    info = dict(getattr(dsd, "galaxy_info", None) or {})
    mosaic_counts: dict[str, int] = {}
    if args.mosaics > 0:
        out = {}
        for k, (name, ds) in enumerate(dsd.items()):
            n = args.mosaics if name == "train" else max(1, args.mosaics // 4)
            offset = int(max(ds["image_id"], default=-1)) + 1
            mos = make_mosaics(
                ds,
                n,
                size=(args.mosaic_size_min, args.mosaic_size_max),
                max_iou=args.mosaic_max_iou,
                seed=seed + k,
                image_id_offset=offset,
            )
            out[name] = mos if args.mosaic_only else concatenate_datasets([ds, mos])
            mosaic_counts[name] = len(mos)
        dsd = DatasetDict(out)
    dsd.galaxy_info = {
        **info,
        **detection_card_facts(dsd),
        "mosaics": mosaic_counts,
        "mosaic_only": bool(args.mosaics > 0 and args.mosaic_only),
    }
    return dsd


def class_names_of(dsd: Any, split: str = "train") -> list[str]:
    """Class names from the ``label`` ClassLabel feature of ``dsd[split]`` (an error naming the features when
    it has none)."""
    from hf_galaxy.data.dataset import label_names

    names = label_names(dsd[split])
    if not names:
        raise ValueError(
            f"dataset split {split!r} has no ClassLabel 'label' column (features: {dsd[split].features})"
        )
    return list(names)


def truncate(ds: Any, n: int | None) -> Any:
    """The first ``n`` rows of ``ds`` (all of them when ``n`` is None or larger; None stays None)."""
    return ds.select(range(min(n, len(ds)))) if n is not None and ds is not None and n < len(ds) else ds


def run_data(
    script_args: Any,
    training_args: Any,
    data_args: Any,
    dataset_dict: Any = None,
    *,
    task: str = "classification",
) -> tuple[Any, Any, Any, Any, str | None]:
    """``(dataset_dict, train, validation, final, final_name)`` of a run.

    ``dataset_dict`` is loaded from ``--dataset`` (main process first) unless given; ``train`` and
    ``validation`` are its truncated splits; ``final`` is the split of the final metrics (``--eval_split``
    when the dataset has it, else ``validation``).
    """
    if dataset_dict is None:
        load = load_detection_data if task == "detection" else load_training_data
        with training_args.main_process_first(desc=f"{task} data"):
            dataset_dict = load(
                script_args.dataset,
                data_args,
                output_dir=training_args.output_dir,
                data_dir=script_args.data_dir,
                seed=training_args.seed,
            )
    if "train" not in dataset_dict:
        raise ValueError(f"the dataset has no 'train' split (splits: {list(dataset_dict)})")
    val_name = "validation" if "validation" in dataset_dict else None
    final_name = script_args.eval_split if script_args.eval_split in dataset_dict else val_name
    return (
        dataset_dict,
        truncate(dataset_dict["train"], data_args.max_train_samples),
        truncate(dataset_dict[val_name], data_args.max_eval_samples) if val_name else None,
        truncate(dataset_dict[final_name], data_args.max_eval_samples) if final_name else None,
        final_name,
    )
