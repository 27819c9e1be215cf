"""The hook specifications of gigapatch: the one place that says what a plugin can do.

Every hook receives ``domain`` (the name given with ``--domain``, e.g. ``"pathology"``) so that a
plugin can decline work that is not its own by returning ``None``. The built-in defaults live in
:mod:`gigapatch.builtin` and are registered like any other plugin, with ``trylast=True`` so that a
domain plugin always gets the first word.

Writing a plugin::

    # my_plugin.py
    from gigapatch import hookimpl

    @hookimpl
    def gigapatch_foreground_mask(rgb, domain, config):
        if domain != "mydomain":
            return None
        return rgb.mean(axis=2) > 10

    # pyproject.toml
    [project.entry-points.gigapatch]
    mydomain = "my_plugin"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pathlib import Path

    import numpy as np

    from .config import Config
    from .image import Image
    from .score import ScoreContext
    from .segment import Region

PROJECT = "gigapatch"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def gigapatch_domains() -> list[dict[str, Any]] | None:
    """Declare the domains this plugin provides.

    Called once when the CLI lists plugins or resolves ``--domain``. Return a list of dicts with
    keys ``name`` (str), ``description`` (str) and ``config`` (a path to the domain's default YAML
    config, or a dict of defaults, or None). Return None (or nothing) if the plugin adds no domain.
    """


@hookspec(firstresult=True)
def gigapatch_open_image(path: Path, domain: str | None) -> Image | None:
    """Open ``path`` as an :class:`gigapatch.Image`.

    Called for every input file; the first non-None result wins, so a plugin returns None for
    files that are not its kind (wrong suffix, unreadable by its library). Raise
    :class:`gigapatch.ImageError` only when the file *is* this plugin's kind but is broken.
    """


@hookspec
def gigapatch_readers() -> dict[str, Any] | None:
    """Name the readers this plugin provides, so ``open_image(path, reader=NAME)`` can force one.

    Called when a reader is asked for by name (``gigapatch info/tile --reader``, tests). Return a
    dict mapping a reader name (e.g. ``"openslide"``) to a callable ``opener(path) -> Image``, or
    None. The core's own ``"tifffile"`` and ``"plain"`` readers are always there.
    """


@hookspec(firstresult=True)
def gigapatch_foreground_mask(
    rgb: np.ndarray, domain: str | None, config: Config, image: Image
) -> np.ndarray | None:
    """Compute the foreground mask of a low-resolution RGB view of an image.

    Called once per image with ``rgb`` of shape (h, w, 3) uint8 (the mask level) and the open
    ``image`` it came from (for readers that know more than RGB: nodata, extra bands). Return a
    bool array of shape (h, w), True where there is foreground (tissue, metal, land). Return None
    when this plugin does not handle ``domain``; the built-in default then applies. An
    implementation may omit arguments it does not use (pluggy passes only those it names).
    """


@hookspec
def gigapatch_exclusion_masks(
    rgb: np.ndarray, domain: str | None, config: Config, image: Image
) -> dict[str, np.ndarray] | None:
    """Name the artefacts that must not count as foreground (pen ink, clouds, nodata...).

    Called once per image, after the foreground mask, with the same ``rgb`` (h, w, 3) uint8 and
    ``image``. Return
    a dict mapping a score name (e.g. ``"pen"``) to a bool (h, w) mask. Every plugin's dicts are
    merged; each mask is removed from the foreground and its per-patch fraction becomes a score
    column of that name. Return None when there is nothing to add.
    """


@hookspec(firstresult=True)
def gigapatch_learned_mask(
    rgb: np.ndarray, weights: Path, domain: str | None, config: Config
) -> np.ndarray | None:
    """Replace the foreground mask with a learned model's output, from a local weights file.

    Called only when the config names ``mask.model_weights``. Return a bool (h, w) mask, or None
    when this plugin cannot load that kind of weights. Never download at run time.
    """


@hookspec(firstresult=True)
def gigapatch_segment(mask: np.ndarray, downsample: float, domain: str | None, config: Config) -> list[Region] | None:
    """Split a refined (h, w) bool mask into connected regions with holes.

    ``downsample`` is the mask's level-0 downsample: returned regions must be in level-0 pixels.
    Return a list of :class:`gigapatch.Region` (possibly empty), or None to leave it to the default.
    """


@hookspec
def gigapatch_score_pixels(patches: np.ndarray, context: ScoreContext) -> dict[str, np.ndarray] | None:
    """Score a batch of candidate patches from their full-resolution pixels.

    Called on batches of (B, size, size, 3) uint8 patches at the output geometry, when
    ``score.sharpness`` (full-resolution scoring) is on. Candidates are read once, through the
    fast reader, and every plugin's scorer sees the same batch. Return a dict of (B,) or (B, ...)
    arrays: 1-D columns become score columns; all are available, in candidate order, to
    ``gigapatch_score_patches`` as ``context.extra["pixels"][name]`` (e.g. per-block statistics
    turned into a slide-relative score). The batch's (B, 2) level-0 top-left x, y are in
    ``context.extra["batch_coords"]`` during the call. Return None to add nothing.
    """


@hookspec
def gigapatch_score_patches(image: Image, coords: np.ndarray, context: ScoreContext) -> dict[str, np.ndarray] | None:
    """Score candidate patches.

    Called once per image with ``coords`` (N, 2) int64 level-0 top-left x, y of the candidates that
    passed the foreground filter (the mask's foreground within ``score.candidate_margin`` of
    ``patch.min_foreground``), after every ``gigapatch_score_pixels`` batch. Return a dict of
    named (N,) float arrays (e.g. ``{"sharpness": ...}``); every plugin's columns are merged into
    the PatchSet's score table. A column that already exists (e.g. ``foreground`` measured on the
    pixels) replaces the candidates' values; the mask's estimate is then kept as
    ``mask_foreground``, and selection allows ``score.foreground_tolerance`` below the bar for
    those candidates. Return None to add nothing. Use ``context`` for the geometry, masks and
    config (see :class:`ScoreContext`).
    """


@hookspec(firstresult=True)
def gigapatch_train(config: dict[str, Any], data: Path, out: Path, domain: str | None) -> dict[str, Any] | None:
    """Train a model.

    Called by ``gigapatch train``. Return a summary dict (e.g. best metric, checkpoint path) or None
    when this plugin does not train for ``domain``; the built-in timm trainer is the default.
    """
