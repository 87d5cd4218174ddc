"""Benchmark: ensemble inference throughput (images/s) for N members against 1, in one run.

Builds ``max(--members)`` classifiers with random weights from one config (different seeds; the weights do not
change the cost), synthesises ``--n`` Galaxy Zoo cutouts (JPEG, decoded like real data) and times
:func:`hf_galaxy.ensemble.predict_members` with the first 1, 3, 5 ... members: one pass over the data, each
batch decoded and preprocessed once and fed to every member. For comparison it also times the naive path,
one separate pass per member (decode + preprocess repeated N times). Prints a table and, with ``--json``,
writes the numbers::

    python benchmarks/bench_ensemble.py                       # CPU: vit-mini (64 px), 256 images
    python benchmarks/bench_ensemble.py --model-config vit-base --image-size 224 --n 2048 --batch-size 128 \\
        --precision bf16 --device cuda                        # GPU: ViT-B/16 members
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

VIT_BASE = (
    "model_type=vit,hidden_size=768,num_hidden_layers=12,num_attention_heads=12,intermediate_size=3072,"
    "patch_size=16"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 3, 5], help="ensemble sizes to time")
    parser.add_argument("--n", type=int, default=256, help="number of images")
    parser.add_argument("--image-size", type=int, default=64, help="model input size (pixels)")
    parser.add_argument(
        "--model-config",
        default="vit-mini",
        help="hf_galaxy.models --model_config spec; 'vit-base' = ViT-B/16 (86M parameters)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (decode + preprocess)")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--tta", type=int, default=1, help="number of TTA rotations (1, 2 or 4)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="time each case this often; report the fastest"
    )
    parser.add_argument("--no-naive", action="store_true", help="skip the one-pass-per-member comparison")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    logging.getLogger("hf_galaxy").setLevel(logging.ERROR)

    import datasets
    import torch

    from hf_galaxy.data.dataset import load_galaxy_dataset
    from hf_galaxy.data.synthetic import GZ1_CLASSES, make_galaxy_zoo
    from hf_galaxy.ensemble import LoadedMember, MemberSpec, predict_members
    from hf_galaxy.models import load_classifier

    datasets.disable_progress_bars()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    spec = VIT_BASE if args.model_config == "vit-base" else args.model_config
    spec = f"{spec},image_size={args.image_size}"
    members = []
    for k in range(max(args.members)):
        torch.manual_seed(k)
        model, processor = load_classifier(None, GZ1_CLASSES, model_config=spec)
        members.append(
            LoadedMember(MemberSpec(f"random-{k}"), model.eval(), processor, list(GZ1_CLASSES), Path("."))
        )
    n_params = sum(p.numel() for p in members[0].model.parameters())

    with tempfile.TemporaryDirectory(prefix="bench_ensemble_") as tmp:
        zoo = make_galaxy_zoo(Path(tmp) / "zoo", args.n, seed=0, image_size=max(args.image_size, 64),
                              show_progress=False)  # fmt: skip
        dsd = load_galaxy_dataset(zoo.catalog_path, zoo.image_dir, cache_dir=Path(tmp) / "cache")
        data = datasets.concatenate_datasets([dsd[s] for s in dsd])
        rotations = [0, 90, 180, 270][: max(1, args.tta)]
        kwargs = dict(
            batch_size=args.batch_size,
            device=device,
            precision=args.precision,
            num_workers=args.num_workers,
            tta_rotations=rotations if args.tta > 1 else None,
            progress=False,
        )
        predict_members(
            members[:1], data.select(range(min(len(data), 2 * args.batch_size))), **kwargs
        )  # warm-up

        def timed(group: list) -> float:
            best = float("inf")
            for _ in range(max(1, args.repeats)):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                predict_members(group, data, **kwargs)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
            return best

        rows = []
        for m in args.members:
            one_pass = timed(members[:m])
            naive = None if args.no_naive or m == 1 else sum(timed([mem]) for mem in members[:m])
            rows.append({"members": m, "one_pass_s": one_pass, "naive_s": naive})

    n = len(data)
    base = rows[0]["one_pass_s"] if rows[0]["members"] == 1 else None
    print(
        f"\n{n} images, {args.model_config} at {args.image_size} px ({n_params / 1e6:.2f}M parameters per member), "
        f"batch {args.batch_size}, {device} {args.precision}, TTA x{len(rotations)}, best of {args.repeats}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    print(
        f"{'members':>7}  {'images/s':>9}  {'cost vs 1':>9}  {'member-images/s':>15}  {'naive images/s':>14}  {'one-pass gain':>13}"
    )
    for r in rows:
        ips = n / r["one_pass_s"]
        r["images_per_s"] = ips
        r["member_images_per_s"] = ips * r["members"]
        r["cost_vs_1"] = r["one_pass_s"] / base if base else None
        r["naive_images_per_s"] = n / r["naive_s"] if r["naive_s"] else None
        r["one_pass_gain"] = r["naive_s"] / r["one_pass_s"] if r["naive_s"] else None
        cost = f"{r['cost_vs_1']:.2f}x" if r["cost_vs_1"] else "-"
        naive = f"{r['naive_images_per_s']:.1f}" if r["naive_images_per_s"] else "-"
        gain = f"{r['one_pass_gain']:.2f}x" if r["one_pass_gain"] else "-"
        print(
            f"{r['members']:>7}  {ips:>9.1f}  {cost:>9}  {r['member_images_per_s']:>15.1f}  {naive:>14}  {gain:>13}"
        )
    if args.json:
        meta = {
            "n_images": n,
            "model_config": args.model_config,
            "image_size": args.image_size,
            "params_per_member": n_params,
            "batch_size": args.batch_size,
            "device": str(device),
            "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
            "precision": args.precision,
            "tta_rotations": rotations,
            "num_workers": args.num_workers,
            "repeats": args.repeats,
        }
        Path(args.json).write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
