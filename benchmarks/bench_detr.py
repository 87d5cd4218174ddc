"""Benchmark: what gradient checkpointing saves when training DETR (peak memory and images/s).

Three settings, each in a fresh subprocess (so CPU peak RSS is that setting's own):

* ``off``: no checkpointing;
* ``transformer``: transformers' ``gradient_checkpointing_enable()`` alone, which in DETR covers only the
  encoder and decoder layers;
* ``full``: that plus :func:`hf_galaxy.models.detection.enable_backbone_checkpointing` (the recipe's
  ``--gradient_checkpointing --backbone_checkpointing``): every trainable ResNet block is recomputed.

The backbone trains with the DETR convention (stem and first stage frozen: ``set_backbone_trainable(model,
"detr")``); ``--train_backbone as_built`` keeps transformers' own choice, which in 5.x freezes the whole HF
ResNet backbone. That is the issue's configuration (plain transformers), so unless ``--no_baseline`` is given
(or ``--train_backbone as_built`` already), two baseline rows come first: ``off`` and ``transformer`` with the
backbone ``as_built``; the comparison then reads "issue's setting, off / on" against "off / transformers'
checkpointing / + backbone" with the recipe's trainable backbone. Random weights, random images and boxes, AdamW; the first ``--warmup`` steps are not timed.
Memory is measured per phase, after warm-up: forward+backward (activations and gradients: what
checkpointing changes; absolute peak and increase over the start of the phase) and the whole step
including AdamW (``peak``). GPU: ``torch.cuda.max_memory_allocated``; CPU: the RSS high-water mark
``VmHWM``, reset per phase via ``/proc/self/clear_refs`` (large tensors are mmap-allocated and returned
to the OS when freed, so the RSS follows them). Images/s is timed over ``--steps`` further steps.

    # GPU (the issue's setting): DETR-R50, fp16, 800x800, batch 8
    python benchmarks/bench_detr.py --preset detr-r50 --image_size 800 --batch_size 8 --fp16
    # CPU (small config, about a minute)
    python benchmarks/bench_detr.py --preset detr-small --image_size 256 --batch_size 4 --steps 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MODES = ("off", "transformer", "full")


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _Meter:
    """Peak memory of a phase: CUDA allocator on a GPU; on CPU the RSS high-water mark (VmHWM), reset per phase
    through /proc/self/clear_refs (large tensors are mmap-allocated and given back when freed)."""

    def __init__(self, cuda: bool) -> None:
        import torch

        self.torch, self.cuda = torch, cuda

    def start(self) -> float:
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()
            return self.torch.cuda.memory_allocated() / 2**20
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return _status_mib("VmRSS")

    def peak(self) -> float:
        if self.cuda:
            self.torch.cuda.synchronize()
            return self.torch.cuda.max_memory_allocated() / 2**20
        return _status_mib("VmHWM")


def run_one(args: argparse.Namespace) -> dict:
    """Train ``args.warmup + args.steps`` steps in this process under ``args.mode``; returns the measurements.

    Memory is measured separately for forward+backward (what checkpointing changes) and the optimizer step.
    """
    import torch

    from hf_galaxy.models import load_detector
    from hf_galaxy.models.detection import enable_backbone_checkpointing, set_backbone_trainable

    torch.manual_seed(0)
    categories = [f"c{i}" for i in range(6)]
    model, _ = load_detector(None, categories, model_config=args.preset, image_size=args.image_size)
    backbone = set_backbone_trainable(model, args.train_backbone)
    cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda" if cuda else "cpu")
    model.to(device).train()
    if args.mode in ("transformer", "full"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    n_blocks = enable_backbone_checkpointing(model) if args.mode == "full" else 0
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    b, s = args.batch_size, args.image_size
    g = torch.Generator().manual_seed(0)
    pixel_values = torch.randn(b, 3, s, s, generator=g).to(device)
    pixel_mask = torch.ones(b, s, s, dtype=torch.long, device=device)

    def labels():
        out = []
        for _ in range(b):
            cxcy = torch.rand(4, 2, generator=g) * 0.6 + 0.2
            wh = torch.rand(4, 2, generator=g) * 0.2 + 0.05
            out.append(
                {
                    "class_labels": torch.randint(0, 6, (4,), generator=g).to(device),
                    "boxes": torch.cat([cxcy, wh], 1).to(device),
                }
            )
        return out

    use_amp = cuda and args.fp16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    meter = _Meter(cuda)
    peaks = {"fwd_bwd_peak": 0.0, "fwd_bwd_increase": 0.0, "step_peak": 0.0}

    def step(measure: bool) -> None:
        opt.zero_grad(set_to_none=True)
        base = meter.start() if measure else 0.0
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            loss = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=labels()).loss
        scaler.scale(loss).backward()
        if measure:
            peak = meter.peak()
            peaks["fwd_bwd_peak"] = max(peaks["fwd_bwd_peak"], peak)
            peaks["fwd_bwd_increase"] = max(peaks["fwd_bwd_increase"], peak - base)
            meter.start()
        scaler.step(opt)
        scaler.update()
        if measure:
            peaks["step_peak"] = max(peaks["step_peak"], meter.peak())

    for _ in range(args.warmup):
        step(measure=False)
    for _ in range(max(1, args.mem_steps)):
        step(measure=True)
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step(measure=False)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    unit = "gib" if cuda else "mib"
    scale = 1 / 1024 if cuda else 1.0
    return {
        "mode": args.mode,
        "train_backbone": args.train_backbone,
        "baseline": args.train_backbone == "as_built",
        "device": torch.cuda.get_device_name(0) if cuda else f"CPU ({torch.get_num_threads()} threads)",
        "images_per_s": round(b * args.steps / elapsed, 3),
        "backbone_blocks_checkpointed": n_blocks,
        "backbone_trainable_params": backbone["trainable"],
        f"fwd_bwd_peak_{unit}": round(peaks["fwd_bwd_peak"] * scale, 3),
        f"fwd_bwd_increase_{unit}": round(peaks["fwd_bwd_increase"] * scale, 3),
        f"peak_{unit}": round(max(peaks["fwd_bwd_peak"], peaks["step_peak"]) * scale, 3),
    }


def plan_runs(modes: list[str], train_backbone: str, *, baseline: bool = True) -> list[tuple[str, str]]:
    """The (mode, train_backbone) settings to run: the baseline rows (the issue's configuration: the backbone
    as transformers builds it, without and with its checkpointing) first, then ``modes`` with
    ``train_backbone``."""
    runs = [(m, train_backbone) for m in modes]
    if baseline and train_backbone != "as_built":
        runs = [("off", "as_built"), ("transformer", "as_built"), *runs]
    return runs


def _run_child(mode: str, backbone: str) -> dict:
    skip = {"--modes", "--no_baseline", *MODES}
    argv, i = [], 0
    raw = sys.argv[1:]
    while i < len(raw):  # drop --train_backbone X (replaced below) and the --modes list
        if raw[i] == "--train_backbone":
            i += 2
            continue
        if raw[i].startswith("--train_backbone="):
            i += 1
            continue
        if raw[i] not in skip:
            argv.append(raw[i])
        i += 1
    cmd = [sys.executable, os.path.abspath(__file__), "--mode", mode, "--train_backbone", backbone, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{mode} ({backbone}): the benchmark subprocess failed (exit {proc.returncode})")
    return json.loads(lines[-1][len("RESULT ") :])


def format_table(results: list[dict]) -> list[str]:
    """The printed comparison: one row per (backbone, mode), baseline rows marked."""
    unit = "gib" if "peak_gib" in results[0] else "mib"
    cols = [f"fwd_bwd_peak_{unit}", f"fwd_bwd_increase_{unit}", f"peak_{unit}"]
    lines = [
        f"{'backbone':<20} {'mode':<12} {'images/s':>9} "
        + " ".join(f"{c:>22}" for c in cols)
        + f" {'blocks':>7} {'bb_trainable':>12}"
    ]
    for r in results:
        label = r["train_backbone"] + (" (baseline)" if r.get("baseline") else "")
        lines.append(
            f"{label:<20} {r['mode']:<12} {r['images_per_s']:>9.3f} "
            + " ".join(f"{r[c]:>22}" for c in cols)
            + f" {r['backbone_blocks_checkpointed']:>7} {r['backbone_trainable_params']:>12}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset", default="detr-small", help="detr-small (CPU), detr-r50, or a detector preset"
    )
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed, unmeasured steps first")
    parser.add_argument("--mem_steps", type=int, default=1, help="untimed steps whose memory is measured")
    parser.add_argument("--fp16", action="store_true", help="fp16 autocast (GPU only)")
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even with a GPU")
    parser.add_argument("--train_backbone", default="detr", choices=["detr", "all", "none", "as_built"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument(
        "--no_baseline",
        action="store_true",
        help="leave out the baseline rows (off / transformer with --train_backbone as_built)",
    )
    parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.mode:
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return
    results = []
    for mode, backbone in plan_runs(args.modes, args.train_backbone, baseline=not args.no_baseline):
        results.append(_run_child(mode, backbone))
        print(json.dumps(results[-1]), flush=True)
    print(
        f"\n{args.preset} {args.image_size}px batch {args.batch_size} "
        f"{'fp16' if args.fp16 else 'fp32'}, {results[0]['device']}"
    )
    print("\n".join(format_table(results)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"args": {k: v for k, v in vars(args).items() if k != "mode"}, "results": results},
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
