"""Training speed and memory: full fine-tune vs LoRA, with/without gradient checkpointing; data-path speed.

Part 1 times optimizer steps (forward + backward + AdamW) on random inputs for each combination of
mode (full / LoRA), gradient checkpointing (off / on), precision and batch size, and reports images/s
and peak memory: ``torch.cuda.max_memory_allocated`` on a GPU; on a CPU the peak resident set size of a
fresh subprocess per configuration (``resource.getrusage``), with the growth over the loaded model.

Throughput is wall-clock images/s; on a CPU also images per CPU-second of the process (robust when other
processes share the cores), with one torch thread by default. Part 2 compares the project's data path (cutouts prepared once at the model's size by
``load_galaxy_dataset(image_size=...)``, then galaxy-aware augmentation + normalisation on the fly) with
the plain transformers-example path (decode the original 424x424 JPEG with PIL and run the image
processor on every step), as images per CPU-second and their ratio. The project path also does its
augmentation (rotation, crop, flip) in that time; the plain path does none.

CPU (small settings)::

    python benchmarks/bench_train.py --device cpu --model vit-mini --batch_sizes 32 --steps 5 --n_images 200

GPU (ViT-B/16 at 224, bf16 and fp16, batch 32 and 256)::

    python benchmarks/bench_train.py --device cuda --model vit-base --precisions bf16,fp16 --batch_sizes 32,256
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {
    # ViT-B/16 at 224 (the architecture of google/vit-base-patch16-224-in21k), random weights
    "vit-base": {"model_type": "vit", "image_size": 224, "patch_size": 16},
    "vit-mini": "vit-mini",
    "vit-tiny": "vit-tiny",
}


def _model_spec(name: str) -> str:
    spec = MODELS.get(name, name)
    return spec if isinstance(spec, str) else json.dumps(spec)


def run_one(cfg: dict) -> dict:
    """Time ``cfg["steps"]`` optimizer steps of one configuration; returns images/s and peak memory."""
    import torch

    from hf_galaxy.models import apply_lora, count_parameters, load_classifier

    torch.manual_seed(0)
    device = torch.device(cfg["device"])
    if device.type == "cpu" and cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    names = [f"c{i}" for i in range(6)]
    model, _ = load_classifier(None, names, model_config=_model_spec(cfg["model"]))
    size = int(model.config.image_size)
    if cfg["mode"] == "lora":
        model = apply_lora(model, r=16, alpha=32, dropout=0.0)
        if cfg["gc"]:
            model.enable_input_require_grads()
    if cfg["gc"]:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.to(device).train()
    trainable, total = count_parameters(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg["precision"])
    scaler = torch.amp.GradScaler(device.type) if cfg["precision"] == "fp16" else None
    bs = int(cfg["batch_size"])
    x = torch.randn(bs, 3, size, size, device=device)
    y = torch.randint(0, len(names), (bs,), device=device)
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(pixel_values=x).logits.float(), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(int(cfg["warmup"])):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(int(cfg["steps"])):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {
        **cfg,
        "image_size": size,
        "trainable_params": trainable,
        "all_params": total,
        "images_per_s": bs * int(cfg["steps"]) / dt,
        # CPU time is robust to other processes sharing the cores (wall-clock throughput is not)
        "images_per_cpu_s": bs * int(cfg["steps"]) / max(cpu, 1e-9),
    }
    if device.type == "cuda":
        out["peak_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["peak_mem_mib"] = peak
        out["mem_over_model_mib"] = peak - rss_model
    return out


def _run_isolated(cfg: dict) -> dict:
    """Run one configuration in a fresh process (CPU peak RSS is per process), or in-process on a GPU."""
    if cfg["device"].startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
        try:
            return run_one(cfg)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            return {**cfg, "images_per_s": float("nan"), "peak_mem_mib": float("nan"), "error": "OOM"}
    proc = subprocess.run(
        [sys.executable, __file__, "--_one", json.dumps(cfg)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark configuration {cfg} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_data(
    n_images: int, image_size: int, batch_size: int, data_dir: str | None, processor_size: int
) -> dict:
    """Images/s of the project's prepared-dataset path vs PIL-decode-424-JPEG + image processor per step."""
    from PIL import Image

    from hf_galaxy.data.dataset import load_galaxy_dataset
    from hf_galaxy.data.synthetic import make_galaxy_zoo
    from hf_galaxy.data.transforms import GalaxyTransform
    from hf_galaxy.models import default_image_processor
    from hf_galaxy.training import collate_galaxy

    work = Path(data_dir or tempfile.mkdtemp(prefix="hf_galaxy_bench_"))
    catalog = work / "catalog.csv"
    if not catalog.is_file():
        make_galaxy_zoo(work, n_images, seed=0, image_size=424, show_progress=False)
    images = sorted((work / "images").glob("*.jpg"))[:n_images]
    processor = default_image_processor("vit", processor_size)

    t0 = time.perf_counter()
    dsd = load_galaxy_dataset(catalog, work / "images", image_size=image_size, cache_dir=work / "cache")
    prep_s = time.perf_counter() - t0
    train = dsd["train"]
    names = train.features["label"].names
    tf = GalaxyTransform(processor, names, train=True)
    ds = train.with_transform(tf)
    n = len(ds)
    t0 = time.process_time()
    for start in range(0, n, batch_size):
        collate_galaxy([ds[i] for i in range(start, min(n, start + batch_size))])
    project = n / (time.process_time() - t0)

    paths = images[:n]
    t0 = time.process_time()
    for start in range(0, len(paths), batch_size):
        batch = [Image.open(p).convert("RGB") for p in paths[start : start + batch_size]]
        processor(batch, return_tensors="pt")
    plain = len(paths) / (time.process_time() - t0)
    return {
        "n_images": n,
        "prepared_size": image_size,
        "model_size": processor_size,
        "prep_once_s": prep_s,
        "project_images_per_s": project,
        "plain_images_per_s": plain,
        "ratio": project / plain,
    }


def _table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    head = " | ".join(h for h, _, _ in cols)
    lines = [head, " | ".join("-" * len(h) for h, _, _ in cols)]
    for r in rows:
        lines.append(" | ".join(format(r.get(k, ""), f) if k in r else "" for _, k, f in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--model", default="vit-mini", help=f"one of {list(MODELS)} or a --model_config spec")
    parser.add_argument(
        "--precisions", default=None, help="comma list (default: fp32 on CPU, bf16,fp16 on GPU)"
    )
    parser.add_argument("--batch_sizes", default="32")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--modes", default="full,lora")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU (0: torch's default)")
    parser.add_argument(
        "--n_images", type=int, default=200, help="images for the data-path comparison (0: skip)"
    )
    parser.add_argument("--data_dir", default=None, help="reuse a synthetic set (catalog.csv + images/)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--_one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._one:
        print(json.dumps(run_one(json.loads(args._one))))
        return 0

    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    precisions = (args.precisions or ("bf16,fp16" if device == "cuda" else "fp32")).split(",")
    rows = []
    for mode, gc, prec, bs in itertools.product(
        args.modes.split(","), (False, True), precisions, [int(b) for b in args.batch_sizes.split(",")]
    ):
        cfg = {"device": device, "model": args.model, "mode": mode, "gc": gc, "precision": prec,
               "batch_size": bs, "steps": args.steps, "warmup": args.warmup, "threads": args.threads}  # fmt: skip
        row = _run_isolated(cfg)
        rows.append(row)
        print(f"  {mode:4s} gc={gc!s:5s} {prec} bs={bs}: {row['images_per_s']:.1f} img/s", file=sys.stderr)
    where = f"{torch.cuda.get_device_name(0)}" if device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(
        f"\nTraining step throughput on {where}, model {args.model} (random weights), {args.steps} timed steps"
    )
    mem_cols = [("peak mem MiB", "peak_mem_mib", ".0f")]
    if device != "cuda":
        mem_cols = [
            ("images/CPU-s", "images_per_cpu_s", ".1f"),
            ("peak RSS MiB", "peak_mem_mib", ".0f"),
            ("RSS over model MiB", "mem_over_model_mib", ".0f"),
        ]
    print(
        _table(
            rows,
            [
                ("mode", "mode", "s"),
                ("grad ckpt", "gc", ""),
                ("precision", "precision", "s"),
                ("batch", "batch_size", "d"),
                ("px", "image_size", "d"),
                ("trainable", "trainable_params", ",d"),
                ("images/s", "images_per_s", ".1f"),
                *mem_cols,
            ],
        )  # fmt: skip
    )
    data = None
    if args.n_images > 0:
        from hf_galaxy.models import load_classifier

        size = int(
            load_classifier(None, ["a", "b"], model_config=_model_spec(args.model))[0].config.image_size
        )
        data = bench_data(args.n_images, size, int(args.batch_sizes.split(",")[0]), args.data_dir, size)
        print(
            f"\nData path, {data['n_images']} training images, 424 px synthetic JPEGs -> {size} px model input"
        )
        print(
            _table(
                [data],
                [
                    ("prepare once s", "prep_once_s", ".1f"),
                    ("project img/CPU-s", "project_images_per_s", ".0f"),
                    ("plain img/CPU-s", "plain_images_per_s", ".0f"),
                    ("ratio", "ratio", ".2f"),
                ],
            )  # fmt: skip
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"train": rows, "data": data}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
