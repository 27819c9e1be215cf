"""torch Datasets for the three training recipes, reading pixels straight from the images.

- :class:`MosaicDataset`: N tiles of an image (ranked by a PatchSet score) stitched into one
  square picture (the PANDA tile-concatenation recipe).
- :class:`ResizeDataset`: the whole image at a low pyramid level resized to S x S (the baseline).
- :class:`PatchDataset`: one patch (or one small image), one label.

Each worker keeps at most ``max_open`` images open (an LRU cache created inside the worker), so
a loader over ten thousand slides never holds them all open. Tensors are normalised with
ImageNet mean/std and randomly flipped with ``torchvision.transforms.v2``.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from gigapatch.errors import ImageError
from gigapatch.training.config import IMAGENET_MEAN, IMAGENET_STD
from gigapatch.training.stitch import (
    Group,
    flip_tiles,
    grid_side,
    make_mosaic,
    read_tiles,
    select_tiles,
)

if TYPE_CHECKING:
    from gigapatch.io.image import Image
    from gigapatch.training.config import TrainConfig
    from gigapatch.training.samples import Sample

log = logging.getLogger(__name__)

PATCH_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


@dataclass
class SlideItem:
    """One labelled image and where its tiles are.

    Attributes
    ----------
    image_id, path, label : the image and its integer label.
    coords : (M, 2) int64 level-0 top-left x, y of candidate tiles (None: no tiles known).
    scores : (M,) float ranking score of each tile (higher = better).
    level : pyramid level the tiles are read at (the reader's numbering); read_size : tile side
        at that level.
    size_level0 : level-0 px a tile covers (0: unknown).
    patch_files : extracted patch files ``<x>_<y>.<ext>`` used instead of ``coords`` (ranked by
        ``scores``).
    mpp : microns per pixel of the tiles as the model sees them (None: unknown).
    """

    image_id: str
    path: Path
    label: int
    coords: np.ndarray | None = None
    scores: np.ndarray | None = None
    level: int = 0
    read_size: int = 0
    size_level0: int = 0
    patch_files: list[Path] | None = None
    mpp: float | None = None

    @property
    def n_candidates(self) -> int:
        if self.patch_files is not None:
            return len(self.patch_files)
        return 0 if self.coords is None else len(self.coords)


def open_image_default(path: Path, domain: str | None = None) -> Image:
    """Open ``path`` through the plugins (:func:`gigapatch.open_image`)."""
    from gigapatch.io.readers import open_image

    return open_image(Path(path), domain=domain)


class ImageCache:
    """A per-process LRU of open images (at most ``max_open``; the oldest is closed first)."""

    def __init__(self, max_open: int = 8, opener: Callable[[Path], Image] | None = None) -> None:
        self.max_open = max(1, int(max_open))
        self.opener = opener or open_image_default
        self._open: OrderedDict[str, Image] = OrderedDict()
        self._pid = os.getpid()

    def get(self, path: str | Path) -> Image:
        if os.getpid() != self._pid:  # a forked worker: the parent's handles are not ours
            self._open = OrderedDict()
            self._pid = os.getpid()
        key = str(path)
        img = self._open.get(key)
        if img is not None:
            self._open.move_to_end(key)
            return img
        img = self.opener(Path(path))
        self._open[key] = img
        while len(self._open) > self.max_open:
            _, old = self._open.popitem(last=False)
            old.close()
        return img

    def __len__(self) -> int:
        return len(self._open)

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()

    def __getstate__(self) -> dict[str, Any]:  # workers start with an empty cache
        state = dict(self.__dict__)
        state["_open"] = OrderedDict()
        return state


def _transforms(augment: bool, mean: Sequence[float], std: Sequence[float]) -> Callable:
    from torchvision.transforms import v2

    ops: list[Any] = []
    if augment:
        ops += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(ops)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> contiguous (3, H, W) uint8 tensor (the transforms run faster on it)."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous()


def read_image_file(path: Path) -> np.ndarray:
    """Decode a small image file to (h, w, 3) uint8 RGB."""
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if arr is None:
        raise ImageError(path, "cannot decode this patch file")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


class _ImageDataset(Dataset):
    """Shared parts: items, label list, LRU of open images, transforms and the epoch."""

    def __init__(
        self,
        items: Sequence[SlideItem],
        *,
        augment: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        max_open: int = 8,
        opener: Callable[[Path], Image] | None = None,
        seed: int = 0,
    ) -> None:
        self.items = list(items)
        self.augment = augment
        self.mean, self.std = tuple(mean), tuple(std)
        self.cache = ImageCache(max_open, opener)
        self.seed = int(seed)
        self.epoch = 0
        self._tf = {True: _transforms(True, mean, std), False: _transforms(False, mean, std)}

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> np.ndarray:
        """(len,) int64 labels."""
        return np.asarray([it.label for it in self.items], np.int64)

    def set_epoch(self, epoch: int) -> None:
        """Set before each epoch (workers are re-created per epoch, so they see it)."""
        self.epoch = int(epoch)

    def picture(self, index: int, augment: bool | None = None) -> np.ndarray:
        """The (H, W, 3) uint8 picture of item ``index`` before normalisation."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        aug = self.augment
        x = self._tf[aug](to_tensor(self.picture(index, aug)))
        return x, int(self.items[index].label)

    def close(self) -> None:
        self.cache.close()


class MosaicDataset(_ImageDataset):
    """Tile mosaics: each item's N ranked tiles on a ``ceil(sqrt(N))`` square grid.

    Parameters
    ----------
    items : :class:`SlideItem` with ``coords``/``scores``/``level``/``read_size`` (or
        ``patch_files``).
    n_tiles : tiles per mosaic N.
    tile_size : tile side in the mosaic (tiles read at another size are resized).
    group : which group of N ranked tiles a mosaic uses (see :func:`gigapatch.training.stitch.select_tiles`);
        ``"random"``/``"cycle"`` change with :meth:`set_epoch`.
    augment : random per-tile flips, then whole-mosaic flips.
    max_open : images kept open per worker.
    opener : ``path -> Image`` (default :func:`gigapatch.open_image`); must pickle for workers.

    Items return ``(x, label)``: x (3, g*s, g*s) float32 normalised, label int.
    """

    def __init__(
        self,
        items: Sequence[SlideItem],
        n_tiles: int = 36,
        tile_size: int = 256,
        *,
        group: Group = "first",
        augment: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        max_open: int = 8,
        opener: Callable[[Path], Image] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            items, augment=augment, mean=mean, std=std, max_open=max_open, opener=opener, seed=seed
        )
        self.n_tiles = int(n_tiles)
        self.tile_size = int(tile_size)
        self.group = group

    @property
    def side(self) -> int:
        """Mosaic side in px."""
        return grid_side(self.n_tiles) * self.tile_size

    def tile_indices(self, index: int) -> np.ndarray:
        """Indices (into the item's candidates) of the tiles the current epoch uses."""
        it = self.items[index]
        m = it.n_candidates
        if m == 0:
            return np.zeros(0, np.int64)
        scores = it.scores if it.scores is not None else -np.arange(m)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return select_tiles(scores, self.n_tiles, group=self.group, rng=rng, epoch=self.epoch)

    def tiles(self, index: int) -> np.ndarray:
        """(n, s, s, 3) uint8 tiles of item ``index`` (n <= N), in rank order."""
        it = self.items[index]
        idx = self.tile_indices(index)
        s = self.tile_size
        if len(idx) == 0:
            return np.zeros((0, s, s, 3), np.uint8)
        if it.patch_files is not None:
            import cv2

            out = np.empty((len(idx), s, s, 3), np.uint8)
            for j, k in enumerate(idx.tolist()):
                t = read_image_file(it.patch_files[k])
                if t.shape[:2] != (s, s):
                    t = cv2.resize(t, (s, s), interpolation=cv2.INTER_AREA)
                out[j] = t
            return out
        assert it.coords is not None  # candidates without patch files are coords
        img = self.cache.get(it.path)
        return read_tiles(img, it.coords[idx], level=it.level, read_size=it.read_size or s, size=s)

    def picture(self, index: int, augment: bool | None = None) -> np.ndarray:
        aug = self.augment if augment is None else augment
        tiles = self.tiles(index)
        if aug and len(tiles):
            tiles = flip_tiles(tiles, np.random.default_rng([self.seed, self.epoch, index, 1]))
        return make_mosaic(tiles, self.n_tiles)


def read_whole_level(img: Image, level: int) -> np.ndarray:
    """The whole image at pyramid ``level`` (negative counts from the smallest); (h, w, 3) uint8."""
    n = img.level_count
    lv = level if level >= 0 else n + level
    lv = min(max(lv, 0), n - 1)
    w, h = img.level_dimensions[lv]
    return img.read_region((0, 0), lv, (w, h))


def resize_square(rgb: np.ndarray, size: int, pad_square: bool = False) -> np.ndarray:
    """Resize (h, w, 3) to (size, size, 3): squash, or pad to a white square first."""
    import cv2

    if pad_square:
        h, w = rgb.shape[:2]
        m = max(h, w)
        sq = np.full((m, m, 3), 255, np.uint8)
        sq[(m - h) // 2 : (m - h) // 2 + h, (m - w) // 2 : (m - w) // 2 + w] = rgb
        rgb = sq
    interp = cv2.INTER_AREA if max(rgb.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interp)


class ResizeDataset(_ImageDataset):
    """The whole image at a low level resized to ``size`` x ``size`` (the resize baseline).

    Parameters
    ----------
    items : :class:`SlideItem` (only ``path`` and ``label`` are used).
    size : output side S.
    level : pyramid level read (-1 = the smallest).
    pad_square : keep the aspect ratio by padding with white (default: squash).
    """

    def __init__(
        self,
        items: Sequence[SlideItem],
        size: int = 256,
        level: int = -1,
        *,
        pad_square: bool = False,
        augment: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        max_open: int = 8,
        opener: Callable[[Path], Image] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            items, augment=augment, mean=mean, std=std, max_open=max_open, opener=opener, seed=seed
        )
        self.size, self.level, self.pad_square = int(size), int(level), pad_square

    def picture(self, index: int, augment: bool | None = None) -> np.ndarray:
        img = self.cache.get(self.items[index].path)
        return resize_square(read_whole_level(img, self.level), self.size, self.pad_square)


class PatchDataset(_ImageDataset):
    """One patch, one label: ``coords[0]`` of each item read at its level, or the whole image.

    Parameters
    ----------
    items : :class:`SlideItem`; with ``coords`` the first row is the patch (level-0 x, y) read as
        ``read_size`` px at ``level``; without, the whole image (level 0) is the patch.
    size : output side.
    """

    def __init__(
        self,
        items: Sequence[SlideItem],
        size: int = 224,
        *,
        augment: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        max_open: int = 8,
        opener: Callable[[Path], Image] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            items, augment=augment, mean=mean, std=std, max_open=max_open, opener=opener, seed=seed
        )
        self.size = int(size)

    def picture(self, index: int, augment: bool | None = None) -> np.ndarray:
        it = self.items[index]
        if it.coords is not None and len(it.coords):
            img = self.cache.get(it.path)
            return read_tiles(
                img, it.coords[:1], level=it.level, read_size=it.read_size or self.size,
                size=self.size,
            )[0]
        if it.path.suffix.lower() in PATCH_SUFFIXES[:3]:
            rgb = read_image_file(it.path)
        else:
            rgb = read_whole_level(self.cache.get(it.path), 0)
        return resize_square(rgb, self.size)


# ---------------------------------------------------------------------- building items
def tiling_config(cfg: TrainConfig, mpp: float | None = None, slide_mpp: float | None = None) -> Any:
    """The gigapatch tiling :class:`~gigapatch.Config` that makes the mosaic arm's tiles.

    Parameters
    ----------
    cfg : the training config (``mosaic.level``, ``tile_size``, ``min_foreground``, ``tiling``).
    mpp : read the tiles at this physical resolution (um per tile px) instead of at
        ``mosaic.level``: the best level at or below it, resized (what prediction does to see
        the pixels a model was trained on).
    slide_mpp : the images' level-0 mpp when their files record none.
    """
    from gigapatch.config import load_config

    m = cfg.mosaic
    overrides: dict[str, Any] = {
        "patch.size": m.tile_size,
        "patch.min_foreground": m.min_foreground,
        "score.sharpness": False,
        "output.overlay": False,
        "output.table": "none",
    }
    if mpp is None:
        overrides["patch.level"] = m.level
    else:
        overrides["patch.mpp"] = float(mpp)
    if slide_mpp is not None:
        overrides["patch.slide_mpp"] = float(slide_mpp)
    overrides.update(m.tiling)
    return load_config(domain=cfg.domain, overrides=overrides)


def _patchset_item(item: SlideItem, ps: Any, rank_by: str) -> SlideItem:
    """Fill ``item`` with a PatchSet's tiles: coords, ranking scores and how they are read (the
    reader's level and read size, the level-0 px they cover, their mpp)."""
    col = ps.scores.get(rank_by, ps.scores.get("foreground"))
    a = ps.attrs
    item.coords = ps.coords
    item.scores = None if col is None else np.asarray(col, np.float32)
    item.level = int(a.get("read_level", a.get("patch_level", 0)))
    item.read_size = int(a.get("read_size", a.get("patch_size", 0)))
    item.size_level0 = int(a.get("patch_size_level0", 0))
    mpp = a.get("effective_mpp")
    item.mpp = float(mpp) if isinstance(mpp, (int, float)) and np.isfinite(mpp) else None
    return item


def _patch_file_scores(files: list[Path], h5: Path, rank_by: str) -> np.ndarray:
    """Rank scores of extracted patch files ``<x>_<y>.<ext>``: the PatchSet's ``rank_by`` column
    when ``h5`` (written beside them by ``gigapatch tile --extract``) exists, else name order."""
    n = len(files)
    if not h5.is_file():
        return -np.arange(n, dtype=np.float32)
    from gigapatch.outputs.patchset import PatchSet

    ps = PatchSet.read(h5)
    col = ps.scores.get(rank_by, ps.scores.get("foreground"))
    if col is None:
        return -np.arange(n, dtype=np.float32)
    lookup = {(int(x), int(y)): float(v) for (x, y), v in zip(ps.coords.tolist(), col.tolist())}
    out = np.full(n, -np.inf, np.float32)
    for i, f in enumerate(files):
        parts = f.stem.split("_")
        if len(parts) == 2 and all(p.lstrip("-").isdigit() for p in parts):
            out[i] = lookup.get((int(parts[0]), int(parts[1])), -np.inf)
    return out


def tile_sample(item: SlideItem, cache: Path | None, tiling: Any) -> Any:
    """PatchSet of one image: from the cache when its config hash matches, else tiled now."""
    from gigapatch.outputs.patchset import PatchSet
    from gigapatch.outputs.run import tile_image

    path = item.path
    h5 = cache / f"{item.image_id}.h5" if cache is not None else None
    if h5 is not None and h5.is_file():
        ps = PatchSet.read(h5)
        if str(ps.attrs.get("config_hash", "")) == tiling.hash():
            return ps
    ps = tile_image(path, tiling)
    if h5 is not None:
        ps.write_h5(h5)
    return ps


def build_items(
    samples: Sequence[Sample],
    cfg: TrainConfig,
    cache: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    mpp: float | None = None,
    slide_mpp: float | None = None,
) -> list[SlideItem]:
    """Turn samples into :class:`SlideItem` with their tiles (mosaic arm; others pass through).

    Tiles come, in order of preference, from ``data.patches_dir/<id>/``, from
    ``data.coords_dir/<id>.h5``, from ``cache/<id>.h5`` when made with the same tiling config, or
    from :func:`gigapatch.tile_image` now (then cached). Images are tiled by ``cfg.workers``
    threads, at ``mosaic.level`` or, given ``mpp``, at that physical resolution
    (:func:`tiling_config`).
    """
    items = [SlideItem(s.image_id, s.path, s.label) for s in samples]
    if cfg.arm != "mosaic":
        return items
    from gigapatch.outputs.patchset import PatchSet

    d = cfg.data
    todo: list[SlideItem] = []
    for it in items:
        if d.patches_dir is not None:
            folder = Path(d.patches_dir) / it.image_id
            files = sorted(p for p in folder.glob("*") if p.suffix.lower() in PATCH_SUFFIXES)
            if not files:
                raise ImageError(folder, "no extracted patches for this image")
            it.patch_files = files
            it.scores = _patch_file_scores(files, Path(d.patches_dir) / f"{it.image_id}.h5",
                                           cfg.mosaic.rank_by)
        elif d.coords_dir is not None and (Path(d.coords_dir) / f"{it.image_id}.h5").is_file():
            _patchset_item(it, PatchSet.read(Path(d.coords_dir) / f"{it.image_id}.h5"), cfg.mosaic.rank_by)
        else:
            todo.append(it)
    if todo:
        tiling = tiling_config(cfg, mpp, slide_mpp)
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
        from concurrent.futures import ThreadPoolExecutor

        def work(it: SlideItem) -> SlideItem:
            return _patchset_item(it, tile_sample(it, cache, tiling), cfg.mosaic.rank_by)

        from gigapatch.training.config import resolve_workers

        with ThreadPoolExecutor(max(1, resolve_workers(cfg.workers)[0])) as pool:
            for i, _ in enumerate(pool.map(work, todo)):
                if progress is not None:
                    progress(i + 1, len(todo))
        log.info("tiles of %d images ready (tiled now or read from %s)", len(todo), cache)
    empty = [it.image_id for it in items if it.n_candidates == 0]
    if empty:
        log.warning("%d images have no tiles (their mosaics are blank): %s", len(empty), empty[:5])
    return items


def make_dataset(
    items: Sequence[SlideItem],
    cfg: TrainConfig,
    train: bool,
    opener: Callable[[Path], Image] | None = None,
) -> _ImageDataset:
    """The dataset of ``cfg.arm`` for training (augmented, ``mosaic.group``) or evaluation."""
    if opener is None:
        from functools import partial

        opener = partial(open_image_default, domain=cfg.domain)
    common: dict[str, Any] = {
        "augment": cfg.augment and train,
        "mean": cfg.mean,
        "std": cfg.std,
        "max_open": cfg.mosaic.max_open,
        "opener": opener,
        "seed": cfg.seed,
    }
    if cfg.arm == "mosaic":
        m = cfg.mosaic
        return MosaicDataset(
            items, m.n_tiles, m.tile_size, group=m.group if train else "first", **common
        )
    if cfg.arm == "resize":
        r = cfg.resize
        return ResizeDataset(items, r.size, r.level, pad_square=r.pad_square, **common)
    return PatchDataset(items, cfg.patch_size, **common)
