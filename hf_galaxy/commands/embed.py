"""``hf-galaxy embed``: pooled features of every galaxy of a folder, catalogue or prepared dataset.

    hf-galaxy embed --model outputs/vit-mae cutouts/ --output_dir embeddings/
    hf-galaxy embed --model user/galaxy-encoder GalaxyZoo1_DR_table2.csv --image_dir cutouts/ --output_dir emb/
    hf-galaxy embed --model outputs/scratch-cnn prepared_gz2/ --output_dir emb/    # keeps the labels

Writes a ``datasets`` Dataset (``save_to_disk``; open it with ``datasets.load_from_disk``) with ``id``, ``ra``/
``dec`` when the catalogue has them, ``label`` for a prepared DatasetDict (``hf-galaxy prepare``) or
``synthetic:N``, ``embedding`` and a 64 px ``thumbnail`` (``hf-galaxy similar`` draws with it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hf_galaxy.commands import print_skipped

HELP = "write a datasets Dataset of pooled image features (embeddings) from a trained model or encoder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data",
        help="image folder (searched recursively), catalogue file, prepared DatasetDict folder or synthetic:N",
    )
    parser.add_argument(
        "--model", required=True, help="training output directory, MAE encoder or Hub repo id"
    )
    parser.add_argument("--output_dir", default="embeddings", help="where the Dataset is saved")
    parser.add_argument("--image_dir", default=None, help="cutout folder of a catalogue DATA")
    parser.add_argument(
        "--pooling",
        default="auto",
        choices=["auto", "mean", "cls", "pooler"],
        help="auto: mean of the patch tokens for ViTs, the global average pool for CNNs",
    )
    parser.add_argument("--split", default=None, help="only this split of a DatasetDict (default: all)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--thumbnail_size", type=int, default=64, help="0: no thumbnails")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")


def _inputs(args: argparse.Namespace):
    from hf_galaxy.inference.predict import inference_inputs

    path = Path(args.data).expanduser()
    prepared = args.data.startswith("synthetic:") or (path / "dataset_dict.json").is_file()
    if not prepared:
        return inference_inputs(args.data, args.image_dir, columns=("ra", "dec"))
    from datasets import concatenate_datasets

    from hf_galaxy.training.data import load_training_data

    dsd = load_training_data(
        args.data, data_dir=Path(args.output_dir).parent / f"{Path(args.output_dir).name}_synthetic_data"
    )
    splits = [args.split] if args.split else list(dsd)
    missing = [s for s in splits if s not in dsd]
    if missing:
        raise ValueError(f"--split {args.split}: {args.data} has the splits {list(dsd)}")
    return concatenate_datasets([dsd[s] for s in splits])


def run(args: argparse.Namespace) -> int:
    from hf_galaxy.inference.embed import EMBEDDING_INFO, embed_images, load_encoder
    from hf_galaxy.jsonio import write_json

    model, processor = load_encoder(args.model)
    data = _inputs(args)
    embeddings, skipped = embed_images(
        model,
        processor,
        data,
        pooling=args.pooling,
        batch_size=args.batch_size,
        device=args.device,
        thumbnail_size=args.thumbnail_size or None,
    )
    embeddings.info.description = (
        f"hf-galaxy embeddings of {args.data} by {args.model} ({args.pooling} pooling)"
    )
    embeddings.save_to_disk(args.output_dir)
    write_json(
        Path(args.output_dir) / EMBEDDING_INFO,
        {"model": args.model, "pooling": args.pooling, "data": args.data, "n": len(embeddings)},
    )
    dim = len(embeddings[0]["embedding"]) if len(embeddings) else 0
    print(f"{len(embeddings)} embeddings of dimension {dim} written to {args.output_dir}")
    print_skipped(skipped, len(data))
    return 0
