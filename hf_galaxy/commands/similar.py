"""``hf-galaxy similar``: the galaxies most like a given one, from an ``hf-galaxy embed`` Dataset.

    hf-galaxy similar embeddings/ --id 587722981741363294 --k 8 --output neighbours.png
    hf-galaxy similar embeddings/ --image new_galaxy.jpg --model outputs/vit-mae

Prints the neighbours (rank, id, distance, label when known), writes them as CSV with ``--csv`` and draws the
query and its neighbours (``--output``, from the thumbnails the embeddings hold).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "find the galaxies most similar to one galaxy (nearest neighbours of its embedding) and draw them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("embeddings", help="a Dataset written by hf-galaxy embed")
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument("--id", help="id of the query galaxy in the embeddings")
    query.add_argument("--image", help="an image file to embed and search with (needs --model)")
    parser.add_argument(
        "--model", default=None, help="the model the embeddings were made with (with --image)"
    )
    parser.add_argument("--pooling", default="auto", choices=["auto", "mean", "cls", "pooler"])
    parser.add_argument("--k", type=int, default=8, help="number of neighbours (default 8)")
    parser.add_argument("--metric", default="cosine", help="any scikit-learn NearestNeighbors metric")
    parser.add_argument("--output", default="neighbours.png", help="picture of the query and its neighbours")
    parser.add_argument("--csv", default=None, help="also write the neighbours to this CSV")


def run(args: argparse.Namespace) -> int:
    from datasets import load_from_disk

    from hf_galaxy.inference.embed import nearest_neighbours, neighbour_labels

    path = Path(args.embeddings)
    if not (path / "dataset_info.json").is_file():
        raise FileNotFoundError(f"{path}: not a Dataset written by hf-galaxy embed (no dataset_info.json)")
    embeddings = load_from_disk(str(path))
    if "embedding" not in embeddings.column_names:
        raise ValueError(f"{path} has no 'embedding' column (columns: {embeddings.column_names})")
    if args.k < 1:
        raise ValueError(f"--k must be >= 1, got {args.k}")
    if args.image:
        from hf_galaxy.data.dataset import open_image
        from hf_galaxy.inference.embed import EMBEDDING_INFO, embed_images, embedding_matrix, load_encoder
        from hf_galaxy.inference.predict import ImageRows
        from hf_galaxy.jsonio import read_json

        made_by = read_json(path / EMBEDDING_INFO) if (path / EMBEDDING_INFO).is_file() else {}
        model_name = args.model or made_by.get("model")
        if not model_name:
            raise ValueError(
                f"--image needs --model: {path} does not record the model its embeddings came from"
            )
        query_image = open_image(args.image)  # a missing or unreadable file is a one-line error here
        model, processor = load_encoder(model_name)
        pooling = args.pooling or made_by.get("pooling") or "auto"
        rows = ImageRows([("query", args.image, None)])
        one, _ = embed_images(model, processor, rows, pooling=pooling, progress=False)
        query, query_title = embedding_matrix(one)[0], Path(args.image).name
    else:
        query = args.id
        ids = list(embeddings["id"])
        row = ids.index(args.id) if args.id in ids else None
        query_image = (
            embeddings[row]["thumbnail"]
            if row is not None and "thumbnail" in embeddings.column_names
            else None
        )
        query_title = f"query {args.id}"
    found = nearest_neighbours(embeddings, query, k=args.k, metric=args.metric)
    labels = neighbour_labels(embeddings, found)
    print(f"{'rank':>4}  {'distance':>9}  id" + ("  label" if labels else ""))
    for rank, n in enumerate(found, 1):
        print(f"{rank:>4}  {n['distance']:>9.4f}  {n['id']}" + (f"  {labels[rank - 1]}" if labels else ""))
    if args.csv:
        import pandas as pd

        frame = pd.DataFrame(found).assign(rank=range(1, len(found) + 1))
        if labels:
            frame["label"] = labels
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        frame[["rank", "id", "distance", *(["label"] if labels else [])]].to_csv(args.csv, index=False)
    if "thumbnail" in embeddings.column_names and query_image is not None:
        from hf_galaxy.plots import plot_neighbours

        images = [embeddings[n["index"]]["thumbnail"] for n in found]
        titles = [
            f"{n['id'][-14:]}\nd={n['distance']:.3f}" + (f" {labels[i]}" if labels else "")
            for i, n in enumerate(found)
        ]
        print(f"picture: {plot_neighbours(query_image, images, titles, args.output, query_title)}")
    else:
        print("no picture: the embeddings hold no thumbnails (embed without --thumbnail_size 0)")
    return 0
