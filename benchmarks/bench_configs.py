"""Peak memory and speed of every shipped recipe config, trained for a few steps by the real recipe flow.

Each config in ``recipes/configs`` runs through ``run_training`` / ``run_detection`` exactly as the recipe
would (its precision, batch size, accumulation, gradient checkpointing, LoRA, processor size), for
``--max_steps`` optimizer steps on synthetic galaxies, with nothing saved but the metrics. Hub checkpoints
cannot be downloaded on the benchmark machines, so a config's Hub model is replaced by the same
architecture with random weights (``ARCHITECTURES``); memory and speed depend on the architecture, not on
the weights. Reported per config: peak GPU memory (``torch.cuda.max_memory_allocated``, whole run), and
training images/s over the steps after the first. ``vit_lora_4gb`` must stay under 4 GiB.

    # GPU: every shipped config (a few minutes on one H100/H200)
    python benchmarks/bench_configs.py --json bench_configs.json
    # CPU smoke run of the flow (memory is then the process's peak RSS)
    python benchmarks/bench_configs.py --configs vit_lora_demo --max_steps 2 --n 64
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "recipes" / "configs"
#: The architectures of the configs' Hub checkpoints, built with random weights (no download).
ARCHITECTURES = {
    "google/vit-base-patch16-224-in21k": '{"model_type": "vit", "image_size": 224, "patch_size": 16}',
    "facebook/detr-resnet-50": "detr-r50",
    "hustvl/yolos-small": '{"model_type": "yolos", "hidden_size": 384, "num_hidden_layers": 12, '
    '"num_attention_heads": 6, "intermediate_size": 1536, "image_size": [512, 512], "patch_size": 16, '
    '"num_detection_tokens": 100}',
}
DETECTION = ("detr", "yolos")
FOUR_GIB = 4 * 2**30


def _peak_memory() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def run_config(name: str, max_steps: int, n: int, workdir: Path) -> dict:
    """Train config ``name`` for ``max_steps`` steps; returns its peak memory and throughput."""
    import torch
    from transformers import TrainerCallback

    from hf_galaxy.training import make_parser, run_detection, run_training

    task = "detection" if name.startswith(DETECTION) else "classification"
    parser = make_parser(task=task, use_lora=name.startswith("vit_lora"))
    out = workdir / name
    script, targs, margs, dargs = parser.parse(
        ["--config", str(CONFIGS / f"{name}.yaml"), "--output_dir", str(out), "--dataset", f"synthetic:{n}",
         "--data_dir", str(workdir / "data"), "--max_steps", str(max_steps), "--eval_strategy", "no",
         "--save_strategy", "no", "--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true"]
    )  # fmt: skip
    if margs.model_config is None:
        margs.model_config = ARCHITECTURES[margs.model_name_or_path]
    if task == "detection":
        dargs.mosaics = min(dargs.mosaics, 8)
        script.num_plot_images = 0
    else:
        script.num_grid_images = 0
        script.tta = False
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *args, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    run = run_detection if task == "detection" else run_training
    run(script, targs, margs, dargs, extra_callbacks=[Clock()])
    batch = targs.per_device_train_batch_size * targs.gradient_accumulation_steps
    steps_timed = max(len(stamps) - 1, 0)
    return {
        "config": name,
        "precision": script.precision,
        "batch": targs.per_device_train_batch_size,
        "accumulation": targs.gradient_accumulation_steps,
        "checkpointing": bool(
            targs.gradient_checkpointing or getattr(targs, "activation_checkpointing", False)
        ),
        "peak_mem_gib": round(_peak_memory() / 2**30, 3),
        "images_per_s": round(batch * steps_timed / (stamps[-1] - stamps[0]), 1) if steps_timed else None,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = sorted(p.stem for p in CONFIGS.glob("*.yaml") if not p.stem.startswith(("hpo", "ensemble")))
    parser.add_argument("--configs", nargs="+", default=names, help=f"configs to run (default: {names})")
    parser.add_argument("--max_steps", type=int, default=4)
    parser.add_argument("--n", type=int, default=400, help="synthetic galaxies (enough for a few batches)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_configs_") as tmp:
        for name in args.configs:
            try:
                rows.append(run_config(name, args.max_steps, args.n, Path(tmp)))
            except Exception as err:  # one config's failure (e.g. OOM) is reported, not fatal
                rows.append({"config": name, "error": f"{type(err).__name__}: {err}"[:500]})
            print(json.dumps(rows[-1]), flush=True)
    four = next((r for r in rows if r["config"] == "vit_lora_4gb" and "peak_mem_gib" in r), None)
    summary = {"rows": rows}
    if four is not None and four["device"] == "cuda":
        summary["vit_lora_4gb_under_4gib"] = four["peak_mem_gib"] * 2**30 < FOUR_GIB
    print(f"\n{'config':<16}{'precision':>10}{'batch':>7}{'peak GiB':>10}{'images/s':>10}")
    for r in rows:
        if "error" in r:
            print(f"{r['config']:<16}  error: {r['error'][:80]}")
        else:
            print(
                f"{r['config']:<16}{r['precision']:>10}{r['batch']:>7}{r['peak_mem_gib']:>10}{r['images_per_s'] or '-':>10}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
