"""A short training benchmark for a GPU machine (runs tiny on CPU with ``--smoke``).

Measures, on one device:

1. model throughput, images/s, of a training step (forward + backward + AdamW) on random input:
   the mosaic arm (resnext50_32x4d at 1536 px) and the resize arm (seresnext50_32x4d at 256 px),
   with AMP (bf16 where supported, else fp16 + grad scaler) and channels-last on CUDA;
2. loader throughput, mosaics/s: a ``MosaicDataset`` of 36 x 256 px tiles (-> 1536 px) read
   straight from synthetic pyramidal TIFFs through a DataLoader with ``--workers`` workers;
3. end to end: one epoch of :func:`gigapatch.training.trainer.train` on that cohort (mosaic arm),
   images/s including loading, AMP and validation (exercises the trainer's CUDA path).

    python benchmarks/gpu_train.py                 # on a GPU machine, ~3-5 min
    python benchmarks/gpu_train.py --smoke         # tiny, CPU is fine (~1 min)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def model_throughput(name: str, px: int, batch: int, steps: int, device, amp: str) -> dict:
    import torch

    from gigapatch.training.models import create_model

    model = create_model(name, 6).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    dtype = None
    if cuda and amp != "off":
        dtype = torch.bfloat16 if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()) \
            else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, px, px, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 6, (batch,), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    model.train()
    for _ in range(max(1, steps // 4)):  # warm-up (cudnn autotune, allocator)
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    out = {"model": name, "input_px": px, "batch": batch, "steps": steps,
           "amp": str(dtype).replace("torch.", "") if dtype else "off",
           "images_per_s": round(batch * steps / dt, 2)}
    if cuda:
        out["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def loader_throughput(data: Path, cfg, passes: int) -> dict:
    from torch.utils.data import DataLoader

    from gigapatch.training import load_samples
    from gigapatch.training.datasets import build_items, make_dataset

    items = build_items(load_samples(data, cfg.data), cfg, cache=data / "tiles-cache")
    ds = make_dataset(items, cfg, train=True)
    rates = []
    for p in range(passes + 1):
        ds.set_epoch(p)
        loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.workers,
                            pin_memory=True)
        t = time.perf_counter()
        n = sum(len(y) for _, y in loader)
        if p:  # pass 0 warms up (worker start, first opens)
            rates.append(n / (time.perf_counter() - t))
    return {"workers": cfg.workers, "n_tiles": cfg.mosaic.n_tiles, "tile_size": cfg.mosaic.tile_size,
            "mosaic_px": ds.side, "mosaics_per_s": round(max(rates), 2)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, CPU-friendly")
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "gigapatch-gpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--mosaic-batch", type=int, default=8)
    ap.add_argument("--resize-batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"])
    ap.add_argument("--n-images", type=int, default=24, help="synthetic slides for the loader")
    ap.add_argument("--skip", default="", help="comma list of: model,loader,e2e")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    args = ap.parse_args(argv)

    import torch

    from gigapatch.training import validate_train_config
    from gigapatch_pathology.cohort import CohortSpec, write_cohort
    from gigapatch_pathology.panda import with_panda_defaults

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    skip = set(filter(None, args.skip.split(",")))
    s = args.smoke
    mosaic_model, resize_model = ("resnet18", "resnet18") if s else ("resnext50_32x4d", "seresnext50_32x4d")
    n_tiles, tile, slide_px = (4, 32, 1024) if s else (36, 256, 4096)
    result: dict = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "smoke": s, "cpus": os.cpu_count(),
    }
    t_all = time.perf_counter()
    if "model" not in skip:
        steps = 2 if s else args.steps
        result["mosaic_arm"] = model_throughput(
            mosaic_model, 64 if s else 1536, 2 if s else args.mosaic_batch, steps, device, args.amp)
        print("mosaic arm:", result["mosaic_arm"], flush=True)
        result["resize_arm"] = model_throughput(
            resize_model, 64 if s else 256, 4 if s else args.resize_batch, steps, device, args.amp)
        print("resize arm:", result["resize_arm"], flush=True)
    data = args.workdir / f"cohort-{slide_px}"
    if not {"loader", "e2e"} <= skip:
        n = 12 if s else args.n_images
        write_cohort(data, n, seed=0, spec=CohortSpec(size=slide_px))
    cfg = validate_train_config(with_panda_defaults({  # the cohort is in PANDA layout
        "arm": "mosaic", "model": mosaic_model, "epochs": 1,
        "batch_size": 2 if s else args.mosaic_batch, "workers": 0 if s else args.workers,
        "folds": 2 if s else 4, "fold": [0], "amp": args.amp,
        "mosaic": {"n_tiles": n_tiles, "tile_size": tile, "level": 0, "group": "random",
                   "min_foreground": 0.5},
    }))
    if "loader" not in skip:
        result["loader"] = loader_throughput(data, cfg, 1 if s else 2)
        print("loader:", result["loader"], flush=True)
    if "e2e" not in skip:
        from gigapatch.training import train

        t = time.perf_counter()
        summary = train(cfg, data, args.workdir / "run")
        dt = time.perf_counter() - t
        n_imgs = sum(f["n_train"] + f["n_val"] for f in summary["folds"].values())
        result["end_to_end"] = {"images": n_imgs, "seconds": round(dt, 1),
                                "images_per_s": round(n_imgs / dt, 2),
                                "qwk": summary["mean_qwk"]}
        print("end to end (1 epoch, incl. validation):", result["end_to_end"], flush=True)
    result["seconds"] = round(time.perf_counter() - t_all, 1)
    print(json.dumps(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
