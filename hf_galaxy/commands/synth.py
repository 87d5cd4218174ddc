"""``hf-galaxy synth``: write a synthetic Galaxy Zoo 1 catalogue with cutouts and truth files."""

from __future__ import annotations

import argparse

HELP = "write a synthetic Galaxy Zoo 1 set (GZ1 Table 2 catalogue, JPEG cutouts, true classes and boxes)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="folder to write catalog.csv, images/, truth.csv, truth_boxes.json")
    parser.add_argument(
        "-n", "--num_galaxies", type=int, default=2000, help="number of galaxies (default 2000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image_size", type=int, default=424, help="cutout size in pixels (default 424)")
    parser.add_argument("--num_proc", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--tree",
        choices=["decals", "gz2"],
        default=None,
        help="also write a GZ DECaLS (GZD-5) or GZ2 catalogue with the vote counts of every answer of its tree",
    )


def run(args: argparse.Namespace) -> int:
    from hf_galaxy.data.synthetic import make_galaxy_zoo

    zoo = make_galaxy_zoo(
        args.out_dir, args.num_galaxies, seed=args.seed, image_size=args.image_size, num_proc=args.num_proc,
        tree=args.tree,
    )  # fmt: skip
    print(f"wrote {zoo.n} galaxies: {zoo.catalog_path} (images in {zoo.image_dir})")
    if zoo.tree_catalog_path is not None:
        print(
            f"whole-tree vote counts ({zoo.tree}): {zoo.tree_catalog_path}, true answers: {zoo.tree_truth_path}"
        )
    return 0
