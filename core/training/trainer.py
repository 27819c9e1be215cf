"""K-fold training of a timm model on mosaics, resized images or patches, scored by QWK.

Per fold: AdamW (or Adam) with a per-step cosine schedule (optional linear warm-up), mixed
precision (bf16, else fp16 with a grad scaler) and channels-last only on CUDA, DDP when launched
by ``torchrun`` (``WORLD_SIZE`` > 1; gloo on CPU, NCCL on GPU; validation runs on rank 0).

Outputs under ``out``::

    folds.csv                  image_id, label, fold (the stratified split)
    metrics.csv                epoch, fold, train_loss, val_loss, qwk, accuracy, lr, seconds
    summary.json               best QWK per fold and the checkpoints
    fold<k>/best.pt            weights of the best epoch by QWK + frozen data config
    fold<k>/last.pt            the same + optimizer/scheduler/scaler state (for ``resume``)
    fold<k>/confusion.png      confusion matrix of the best epoch
    fold<k>/val_predictions.csv
    tiles/<image_id>.h5        cached PatchSets of the mosaic arm

Epochs and folds are numbered from 0 everywhere (log lines, ``metrics.csv``, checkpoints,
``summary.json``): ``epochs: 10`` runs epochs 0..9, and the log says so when training starts.
Loader workers are capped to the cores this process may use (one info line when a configured
number is lowered), so ``workers: 8`` on a 2-core machine runs 2 without a warning.

The library only logs; records carrying ``extra={"progress": (task, done, total)}`` let the CLI
draw bars.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gigapatch.training.config import TrainConfig, resolve_workers, validate_train_config
from gigapatch.training.models import create_model, decode, loss_fn

if TYPE_CHECKING:
    from gigapatch.io.image import Image
    from gigapatch.training.datasets import SlideItem

log = logging.getLogger(__name__)

METRIC_COLUMNS = ["epoch", "fold", "train_loss", "val_loss", "qwk", "accuracy", "lr", "seconds"]
CHECKPOINT_FORMAT = "gigapatch-train/1"


# ---------------------------------------------------------------------- metrics
def quadratic_kappa(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Quadratic weighted Cohen's kappa (sklearn); 0.0 where it is undefined."""
    from sklearn.metrics import cohen_kappa_score

    if len(y_true) == 0:
        return 0.0
    import warnings

    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # undefined kappa (one class only) -> 0.0 below
        k = cohen_kappa_score(y_true, y_pred, weights="quadratic", labels=list(range(num_classes)))
    return float(k) if np.isfinite(k) else 0.0


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 confusion matrix, rows = truth, columns = prediction."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=list(range(num_classes)))


def plot_confusion(cm: np.ndarray, labels: list[str], path: Path, title: str = "") -> Path:
    """Write a confusion matrix PNG with matplotlib's Agg canvas (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(labels)
    fig = Figure(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(cm, cmap="Blues")
    vmax = cm.max() if cm.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if cm[i, j] > vmax / 2 else "black", fontsize=8)
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


# ---------------------------------------------------------------------- folds
def fold_assignment(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """(N,) int fold of each sample: sklearn ``StratifiedKFold`` on the label (shuffled)."""
    import warnings

    from sklearn.model_selection import StratifiedKFold

    from gigapatch.errors import ConfigError

    labels = np.asarray(labels)
    if np.bincount(labels).max(initial=0) < folds:
        raise ConfigError(
            f"{len(labels)} images (at most {np.bincount(labels).max(initial=0)} per class) cannot "
            f"be split into {folds} stratified folds"
        )
    out = np.empty(len(labels), np.int64)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        for k, (_, val) in enumerate(skf.split(np.zeros(len(labels)), labels)):
            out[val] = k
    return out


# ---------------------------------------------------------------------- distributed
class Dist:
    """World size / rank from the torchrun environment; set up the process group when > 1."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ
        self._owns_group = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def setup(self, device: torch.device) -> None:
        import torch.distributed as dist

        if self.enabled and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, rank=self.rank, world_size=self.world)
            self._owns_group = True

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.enabled and dist.is_initialized():
            dist.barrier()

    def teardown(self) -> None:
        import torch.distributed as dist

        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False


def pick_device(cfg: TrainConfig, dist: Dist) -> torch.device:
    if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        from gigapatch.errors import ConfigError

        raise ConfigError("device 'cuda' asked for, but torch sees no CUDA device")
    return torch.device("cuda", dist.local_rank if dist.enabled else torch.cuda.current_device())


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (CUDA only), or None for full precision."""
    if device.type != "cuda" or cfg.amp == "off":
        return None
    if cfg.amp == "bf16" or (cfg.amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


# ---------------------------------------------------------------------- schedule
def cosine_lambda(total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """LR multiplier per step: linear warm-up, then cosine from 1 to 0 over the remaining steps."""
    total = max(1, total_steps)
    warm = max(0, min(warmup_steps, total - 1))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        t = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1.0 + math.cos(math.pi * t))

    return f


def _progress(task: str, done: int, total: int) -> None:
    log.debug("%s %d/%d", task, done, total, extra={"progress": (task, done, total)})


# ---------------------------------------------------------------------- one epoch
def _loader(ds: Any, cfg: TrainConfig, train: bool, device: torch.device, dist: Dist, epoch: int) -> Any:
    from torch.utils.data import DataLoader, DistributedSampler

    sampler: DistributedSampler | None = None
    if train and dist.enabled:
        sampler = DistributedSampler(ds, num_replicas=dist.world, rank=dist.rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)
        sampler.set_epoch(epoch)
    g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
    n = len(ds) // (dist.world if sampler is not None else 1)
    return DataLoader(
        ds,
        batch_size=cfg.batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=resolve_workers(cfg.workers)[0],  # train() has resolved it (and said so)
        pin_memory=device.type == "cuda",
        drop_last=train and n > cfg.batch_size,  # no 1-sample batch for BatchNorm
        generator=g,
        persistent_workers=False,  # workers re-created per epoch see set_epoch()
    )


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def train_one_epoch(
    model: torch.nn.Module, loader: Any, criterion: Any, opt: torch.optim.Optimizer,
    sched: Any, scaler: Any, device: torch.device, dtype: torch.dtype | None,
    channels_last: bool, task: str = "train",
) -> float:
    """One pass over ``loader``; returns the mean training loss."""
    model.train()
    total, count = 0.0, 0
    n = len(loader)
    for i, (x, y) in enumerate(loader):
        x = _to_device(x, device, channels_last)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = criterion(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        total += float(loss.detach()) * len(y)
        count += len(y)
        _progress(task, i + 1, n)
    return total / max(1, count)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, loader: Any, criterion: Any, head: str, device: torch.device,
    dtype: torch.dtype | None, channels_last: bool, task: str = "val",
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Returns (mean loss, predicted grades (N,), probabilities (N, C), labels (N,))."""
    model.eval()
    losses, preds, probs, labels = 0.0, [], [], []
    n = len(loader)
    for i, (x, y) in enumerate(loader):
        x = _to_device(x, device, channels_last)
        y = y.to(device)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(x)
        losses += float(criterion(logits.float(), y)) * len(y)
        p, pr = decode(head, logits.float())  # type: ignore[arg-type]
        preds.append(p.cpu())
        probs.append(pr.cpu())
        labels.append(y.cpu())
        _progress(task, i + 1, n)
    if not labels:
        return 0.0, np.zeros(0, np.int64), np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    y_all = torch.cat(labels).numpy()
    return (
        losses / max(1, len(y_all)),
        torch.cat(preds).numpy().astype(np.int64),
        torch.cat(probs).numpy().astype(np.float32),
        y_all.astype(np.int64),
    )


# ---------------------------------------------------------------------- checkpoints
def versions() -> dict[str, str]:
    import platform

    import timm
    import torchvision

    from gigapatch import __version__

    return {  # plain str: torch.__version__ is a TorchVersion, which weights_only refuses
        "gigapatch": str(__version__),
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "timm": str(timm.__version__),
        "python": platform.python_version(),
    }


def tile_resolution(cfg: TrainConfig, items: list[SlideItem]) -> dict[str, Any]:
    """The physical resolution of the mosaic arm's training tiles, as a model sees them.

    Returns
    -------
    dict with ``mpp`` (median um per tile px over the images whose mpp is known, else None),
    ``mpp_range`` ([min, max] or None), ``downsample`` (median level-0 px per tile px, None when
    no tile geometry is known) and ``level`` (the configured pyramid level).
    """
    m = cfg.mosaic
    mpps = [it.mpp for it in items if it.mpp is not None]
    ds = [it.size_level0 / m.tile_size for it in items if it.size_level0 > 0]
    return {
        "level": m.level,
        "mpp": float(np.median(mpps)) if mpps else None,
        "mpp_range": [float(min(mpps)), float(max(mpps))] if mpps else None,
        "downsample": float(np.median(ds)) if ds else None,
    }


def data_config(cfg: TrainConfig, items: list[SlideItem]) -> dict[str, Any]:
    """What a model needs to see the same pixels at prediction time: the arm, input and tile
    sizes, the tiles' physical resolution (:func:`tile_resolution`; ``mpp``, ``mpp_range``,
    ``downsample``, ``level``), normalisation, classes and model name."""
    res: dict[str, Any] = (tile_resolution(cfg, items) if cfg.arm == "mosaic" else
                           {"level": cfg.resize.level, "mpp": None, "mpp_range": None,
                            "downsample": None})
    return {
        "arm": cfg.arm,
        "input_size": cfg.input_size,
        "n_tiles": cfg.mosaic.n_tiles if cfg.arm == "mosaic" else None,
        "tile_size": cfg.mosaic.tile_size if cfg.arm == "mosaic" else None,
        **res,
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "num_classes": cfg.num_classes,
        "head": cfg.head,
        "label_names": cfg.label_names,
        "model": cfg.model,
    }


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary name, then rename (a crash never leaves half a file)."""
    from gigapatch.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a gigapatch checkpoint (tensors and plain data only: ``weights_only=True``)."""
    from gigapatch.errors import ImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(path, "checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise ImageError(path, f"not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ImageError(path, "not a gigapatch training checkpoint")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> tuple[torch.nn.Module, TrainConfig]:
    """Rebuild the model of a checkpoint (weights loaded) and its frozen config."""
    cfg = validate_train_config(ckpt["config"])
    model = create_model(cfg.model, cfg.classes, cfg.head, pretrained=None)
    model.load_state_dict(ckpt["model"])
    return model, cfg


# ---------------------------------------------------------------------- metrics files
def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    from gigapatch.io.atomic import atomic_path

    rows = sorted(rows, key=lambda r: (int(r["fold"]), int(r["epoch"])))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in METRIC_COLUMNS})


def _write_predictions(path: Path, ids: list[str], labels: np.ndarray, preds: np.ndarray,
                       probs: np.ndarray) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "label", "pred", *[f"prob_{i}" for i in range(probs.shape[1])]])
        for i, iid in enumerate(ids):
            w.writerow([iid, int(labels[i]), int(preds[i]), *[f"{p:.5f}" for p in probs[i]]])


# ---------------------------------------------------------------------- one fold
def train_fold(
    cfg: TrainConfig,
    items: list[SlideItem],
    folds: np.ndarray,
    k: int,
    out: Path,
    device: torch.device,
    dist: Dist,
    other_rows: list[dict[str, Any]],
    opener: Callable[[Path], Image] | None = None,
) -> dict[str, Any]:
    """Train fold ``k`` (validate on ``folds == k``); returns its summary."""
    from gigapatch.training.datasets import make_dataset

    fold_dir = out / f"fold{k}"
    fold_dir.mkdir(parents=True, exist_ok=True)
    tr_items = [it for it, f in zip(items, folds) if f != k]
    va_items = [it for it, f in zip(items, folds) if f == k]
    train_ds = make_dataset(tr_items, cfg, train=True, opener=opener)
    val_ds = make_dataset(va_items, cfg, train=False, opener=opener)

    torch.manual_seed(cfg.seed + k)
    np.random.seed((cfg.seed + k) % 2**32)
    model = create_model(cfg.model, cfg.classes, cfg.head, cfg.pretrained)
    cuda = device.type == "cuda"
    channels_last = cfg.channels_last and cuda
    model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net: torch.nn.Module = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    o = cfg.optim
    opt_cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    opt = opt_cls(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    steps = len(_loader(train_ds, cfg, True, device, dist, 0))
    if o.scheduler == "cosine":
        lam = cosine_lambda(steps * cfg.epochs, round(o.warmup_epochs * steps))
    else:
        def lam(step: int) -> float:
            return 1.0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    dtype = amp_dtype(cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    criterion = loss_fn(cfg.head, cfg.classes)
    dcfg = data_config(cfg, items)
    frozen = {
        "format": CHECKPOINT_FORMAT,
        "fold": k,
        "config": cfg.model_dump(mode="json"),
        "data_config": dcfg,
        "versions": versions(),
    }

    start, best, best_epoch, history = 0, -math.inf, -1, []
    last_pt = fold_dir / "last.pt"
    if cfg.resume and last_pt.is_file():
        ck = load_checkpoint(last_pt)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        for group, base in zip(opt.param_groups, sched.base_lrs):  # epochs may have changed
            group["lr"] = base * lam(sched.last_epoch)
        scaler.load_state_dict(ck["scaler"])
        start = int(ck["epoch"]) + 1
        best, best_epoch = float(ck["best_qwk"]), int(ck["best_epoch"])
        history = list(ck["history"])
        log.info("fold %d: resumed from %s at epoch %d", k, last_pt, start)

    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        lr0 = opt.param_groups[0]["lr"]
        train_ds.set_epoch(epoch)
        loader = _loader(train_ds, cfg, True, device, dist, epoch)
        train_loss = train_one_epoch(
            net, loader, criterion, opt, sched, scaler, device, dtype, channels_last,
            task=f"fold {k} epoch {epoch} of 0-{cfg.epochs - 1}",
        )
        if dist.enabled:  # average the training loss over ranks
            import torch.distributed as tdist

            t = torch.tensor([train_loss], device=device)
            tdist.all_reduce(t)
            train_loss = float(t) / dist.world
        if dist.main:
            val_loader = _loader(val_ds, cfg, False, device, _Single(), epoch)
            val_loss, preds, probs, labels = evaluate(
                model, val_loader, criterion, cfg.head, device, dtype, channels_last,
                task=f"fold {k} validation",
            )
            qwk = quadratic_kappa(labels, preds, cfg.classes)
            acc = float((preds == labels).mean()) if len(labels) else 0.0
            row = {
                "epoch": epoch, "fold": k, "train_loss": round(train_loss, 6),
                "val_loss": round(val_loss, 6), "qwk": round(qwk, 6), "accuracy": round(acc, 6),
                "lr": lr0, "seconds": round(time.perf_counter() - t0, 2),
            }
            history.append(row)
            log.info(
                "fold %d epoch %d of 0-%d: train_loss %.4f val_loss %.4f qwk %.4f acc %.3f (%.0f s)",
                k, epoch, cfg.epochs - 1, train_loss, val_loss, qwk, acc, row["seconds"],
            )
            state = {**frozen, "model": model.state_dict(), "epoch": epoch, "qwk": qwk,
                     "history": history}
            if qwk > best:
                best, best_epoch = qwk, epoch
                save_checkpoint(fold_dir / "best.pt", {**state, "best_qwk": best, "best_epoch": epoch})
                cm = confusion(labels, preds, cfg.classes)
                plot_confusion(cm, cfg.label_names, fold_dir / "confusion.png",
                               f"fold {k}, epoch {epoch}: QWK {qwk:.3f}")
                _write_predictions(fold_dir / "val_predictions.csv",
                                   [it.image_id for it in va_items], labels, preds, probs)
            if (epoch + 1) % cfg.save_every == 0 or epoch + 1 == cfg.epochs:
                save_checkpoint(last_pt, {
                    **state, "best_qwk": best, "best_epoch": best_epoch,
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "scaler": scaler.state_dict(),
                })
            _write_metrics(out / "metrics.csv", other_rows + history)
        dist.barrier()
    train_ds.close()
    val_ds.close()
    return {
        "fold": k,
        "best_qwk": None if best == -math.inf else float(best),
        "best_epoch": best_epoch,
        "checkpoint": str(fold_dir / "best.pt"),
        "last": str(last_pt),
        "n_train": len(tr_items),
        "n_val": len(va_items),
        "history": history,
    }


def _check_one_resolution(res: dict[str, Any]) -> None:
    """Warn when the training tiles differ in physical resolution by more than 10 % (images
    scanned at different mpp read at one pyramid level): the checkpoint records one mpp."""
    span = res.get("mpp_range")
    if span and span[1] > 1.1 * span[0]:
        log.warning(
            "the training tiles range from %.3g to %.3g um/px (mosaic.level %d on images of "
            "different mpp); prediction reads every image at the median, %.3g um/px",
            span[0], span[1], res["level"], res["mpp"],
        )


class _Single(Dist):
    """A one-process view (validation on rank 0 only)."""

    def __init__(self) -> None:
        self.world, self.rank, self.local_rank, self.enabled = 1, 0, 0, False
        self._owns_group = False


# ---------------------------------------------------------------------- entry point
def train(
    config: dict[str, Any] | TrainConfig,
    data: str | Path,
    out: str | Path,
    *,
    opener: Callable[[Path], Image] | None = None,
) -> dict[str, Any]:
    """Train with stratified K-fold cross-validation; see the module docstring for the outputs.

    Parameters
    ----------
    config : a :class:`TrainConfig` or its dict (validated; unknown keys are errors).
    data : folder in the layout ``config['data']`` describes (default: ``labels.csv`` of
        ``image_id, label`` beside ``images/<image_id>.<suffix>``). ``num_classes``, when not
        set, is inferred from the labels (and frozen into the checkpoints).
    out : run folder (created).
    opener : ``path -> Image`` for reading pixels (default :func:`gigapatch.open_image`).

    Returns
    -------
    dict with ``folds`` (per-fold best QWK, epoch, checkpoint), ``mean_qwk`` and ``out``.
    """
    from gigapatch.training.config import resolve_num_classes
    from gigapatch.training.datasets import build_items
    from gigapatch.training.samples import load_samples

    cfg = validate_train_config(config)
    data, out = Path(data), Path(out)
    dist = Dist()
    workers, note = resolve_workers(cfg.workers)
    if note and dist.main:
        log.info("%s", note)
    cfg = cfg.model_copy(update={"workers": workers})
    device = pick_device(cfg, dist)
    dist.setup(device)
    try:
        samples = load_samples(data, cfg.data, cfg.num_classes)
        cfg = resolve_num_classes(cfg, [s.label for s in samples], data / cfg.data.csv)
        out.mkdir(parents=True, exist_ok=True)
        cache = out / "tiles"
        if dist.main:
            items = build_items(samples, cfg, cache, progress=lambda i, n: _progress("tiling", i, n))
        dist.barrier()
        if not dist.main:  # the cache is warm now
            items = build_items(samples, cfg, cache)
        if cfg.arm == "mosaic" and dist.main:
            _check_one_resolution(tile_resolution(cfg, items))
        labels = np.asarray([s.label for s in samples])
        folds = fold_assignment(labels, cfg.folds, cfg.seed)
        run = cfg.fold if cfg.fold is not None else list(range(cfg.folds))
        if dist.main:
            (out / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))
            with open(out / "folds.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["image_id", "label", "fold"])
                w.writerows((s.image_id, s.label, int(fk)) for s, fk in zip(samples, folds))
        rows = _read_metrics(out / "metrics.csv")
        log.info(
            "training %s (%s arm, %s head) on %d images: folds %s of a %d-fold split, epochs "
            "0-%d (folds and epochs numbered from 0, as in metrics.csv), device %s, %d loader "
            "workers", cfg.model, cfg.arm, cfg.head, len(samples), run, cfg.folds,
            cfg.epochs - 1, device, cfg.workers,
        )
        results = []
        for k in run:
            other = [r for r in rows if int(r["fold"]) != k]
            results.append(train_fold(cfg, items, folds, k, out, device, dist, other, opener))
            rows = other + results[-1]["history"]
        qwks = [r["best_qwk"] for r in results if r["best_qwk"] is not None]
        summary = {
            "out": str(out),
            "arm": cfg.arm,
            "model": cfg.model,
            "folds": {r["fold"]: {k: v for k, v in r.items() if k != "history"} for r in results},
            "mean_qwk": float(np.mean(qwks)) if qwks else None,
            "metrics": str(out / "metrics.csv"),
        }
        if dist.main:
            (out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    finally:
        dist.teardown()
