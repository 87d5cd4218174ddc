"""One node of the two-process sharding test (tests/test_embedded.py): streams its share of a split."""

from __future__ import annotations

import json
import os
import sys

from datasets.distributed import split_dataset_by_node

from hf_galaxy import load_galaxy_dataset


def main(catalog: str, out: str) -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dsd = load_galaxy_dataset(catalog, streaming=True, image_size=32)
    mine = split_dataset_by_node(dsd["train"], rank=rank, world_size=world)
    ids = [row["id"] for row in mine]
    with open(out, "w") as f:
        json.dump({"rank": rank, "ids": ids, "n_shards": dsd["train"].n_shards}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
