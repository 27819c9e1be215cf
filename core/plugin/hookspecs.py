"""The hook specifications of gigapatch: the one place that says what a plugin can do.

A plugin is a module (or object) with functions named like the hooks below and marked with
:data:`hookimpl`, registered under the entry-point group ``gigapatch``. An implementation may name
only the arguments it uses (pluggy passes those). Hooks that work on one image get its
:class:`~gigapatch.ImageContext` as ``context``: ``context.domain`` is the active domain, so a
plugin declines work that is not its own by returning None. The built-in defaults
(:mod:`gigapatch.plugin.builtin`) are registered like any other plugin, each ``trylast`` so a
domain plugin always gets the first word. A hook marked ``firstresult`` stops at the first
non-None answer; every other hook collects the answers of all plugins (None answers dropped).

Hooks in the order a run calls them:

==================================  =========================================================
``gigapatch_domains``               declare domains (once, when domains are listed)
``gigapatch_readers``               name readers (when one is asked for by name)
``gigapatch_open_image``            open a file (first non-None wins)
``gigapatch_image_domain``          pick the domain of an image when none was given
``gigapatch_describe_image``        extra facts ``gigapatch info`` shows about an image
``gigapatch_prepare_image``         apply the resolved config to the open image
``gigapatch_learned_mask``          a learned foreground mask (``mask.model_weights``)
``gigapatch_foreground_mask``       the foreground mask of the low-resolution view
``gigapatch_exclusion_masks``       artefacts removed from the foreground (ink, cloud...)
``gigapatch_segment``               split the refined mask into regions
``gigapatch_reads_pixels``          does this plugin score candidates on their pixels?
``gigapatch_score_pixels``          scores from full-resolution candidate pixels, per batch
``gigapatch_score_patches``         scores of all candidates, once per image
``gigapatch_reject_patches``        the plugin's own rejection rules, each a reason
``gigapatch_patch_columns``         per-patch data that is not a score (labels, bounds)
``gigapatch_write_outputs``         a domain's own files for one image
``gigapatch_train``                 train a model (``gigapatch train``)
``gigapatch_demo``                  the domain's one-command demo (``gigapatch demo``)
``gigapatch_cli_commands``          a plugin's own commands (``gigapatch fit-normal``...)
``gigapatch_tile_options``          a plugin's own ``gigapatch tile`` flags (``--bands``...)
==================================  =========================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pathlib import Path

    import numpy as np

    from gigapatch.io.image import Image
    from gigapatch.outputs.patchset import PatchSet
    from gigapatch.plugin.context import ImageContext
    from gigapatch.plugin.options import TileOption
    from gigapatch.tiling.segment import Region

PROJECT = "gigapatch"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def gigapatch_domains() -> list[dict[str, Any]] | None:
    """Declare the domains this plugin provides.

    Called when domains are listed or a config is resolved (``--domain NAME`` must be a declared
    name). Return a list of dicts with keys ``name`` (str), ``description`` (str) and ``config``
    (a path to the domain's default YAML config, a dict of defaults shaped like a config file,
    or None): the defaults go beneath the user's ``--config`` file and flags. Optional keys:
    ``settings`` (the pydantic model of ``plugin.<name>``, listed by ``gigapatch plugins`` so every
    setting and output switch is discoverable) and ``region_class`` (the GeoJSON class name of a
    foreground region, such as ``"Tissue"``). Return None if the plugin adds no domain.
    """


@hookspec
def gigapatch_readers() -> dict[str, Any] | None:
    """Name the readers this plugin provides, so ``open_image(path, reader=NAME)`` can force one.

    Called when a reader is asked for by name (``open_image(path, reader=NAME)``) or the readers
    are listed (``available_readers()``). Return a dict mapping a reader name (e.g.
    ``"openslide"``) to a callable ``opener(path) -> Image``, or None. The core's own
    ``"tifffile"`` and ``"plain"`` readers are always there (and win a name clash).
    """


@hookspec(firstresult=True)
def gigapatch_open_image(path: Path, domain: str | None) -> Image | None:
    """Open ``path`` as a :class:`gigapatch.Image`.

    Called for every input file, with the domain asked for (None when the run has not chosen
    one). The first non-None result wins, so return None for files that are not your kind (wrong
    suffix, unreadable by your library). Raise :class:`gigapatch.ImageError` only when the file
    *is* your kind but is broken.
    """


@hookspec(firstresult=True)
def gigapatch_image_domain(image: Image) -> str | None:
    """Name the domain of an open image, when the run was given none (no ``--domain``, no
    ``domain:`` in the config file).

    Called once per image after it is opened. Return your domain's name when the image is
    plainly yours (a whole-slide image with a microscope resolution, a georeferenced raster),
    else None. The first name wins; with none, the image is tiled with the ``generic`` domain.
    """


@hookspec
def gigapatch_describe_image(image: Image) -> dict[str, str] | None:
    """Extra facts about an open image that ``gigapatch info`` shows, one line each.

    Called by ``gigapatch info`` for every image, after its levels are listed. Return a dict
    mapping a label (e.g. ``"crs"``, ``"bands"``) to one line of text, or None when the image
    is not your reader's kind. Every plugin's answers are shown.
    """


@hookspec
def gigapatch_prepare_image(context: ImageContext) -> None:
    """Apply the resolved config to the open image before anything is read from it.

    Called once per image when its tiling starts, after its config is resolved (the domain
    is known) and before the patch geometry is resolved and any pixel is read;
    ``context.geometry`` is still None. A reader whose behaviour follows the domain's settings
    (which bands to show, a no-data value the user gave, a CRS to reproject to) is set up here,
    in place. Return None; check ``context.domain`` and do nothing when it is not yours.
    """


@hookspec(firstresult=True)
def gigapatch_learned_mask(rgb: np.ndarray, weights: Path, context: ImageContext) -> np.ndarray | None:
    """Replace the foreground mask with a learned model's output, from a local weights file.

    Called once per image, only when the config names ``mask.model_weights``, with ``rgb`` the
    (h, w, 3) uint8 low-resolution view. Return a bool (h, w) mask, or None when this plugin
    cannot load that kind of weights. Never download at run time.
    """


@hookspec(firstresult=True)
def gigapatch_foreground_mask(rgb: np.ndarray, context: ImageContext) -> np.ndarray | None:
    """Compute the foreground mask of the low-resolution view of an image.

    Called once per image with ``rgb`` (h, w, 3) uint8 (also ``context.rgb``; ``context.image`` is
    the open image, for readers that know more than RGB: nodata, extra bands). Return a bool
    (h, w) array, True where there is foreground (tissue, metal, land). Return None when this
    plugin does not handle ``context.domain``: the built-in Otsu-on-saturation mask then applies.
    Not called when ``mask.method`` is ``"otsu"`` (the built-in mask, whatever the domain) or
    ``mask.model_weights`` is set (``gigapatch_learned_mask`` instead).
    """


@hookspec
def gigapatch_exclusion_masks(rgb: np.ndarray, context: ImageContext) -> dict[str, np.ndarray] | None:
    """Name the artefacts that must not count as foreground (marker ink, clouds, nodata...).

    Called once per image, after the foreground mask (whichever hook or method made it), with
    the same ``rgb``. Return a dict mapping a score name (e.g. ``"pen"``) to a bool (h, w) mask,
    or None. Every plugin's dicts are merged (masks of the same name OR-ed); each mask is removed
    from the foreground (before and after refinement), kept in ``context.exclusions``, and its
    per-patch fraction becomes a score column of that name (a scorer may replace the column
    later, e.g. with a value measured on the pixels).
    """


@hookspec(firstresult=True)
def gigapatch_segment(mask: np.ndarray, context: ImageContext) -> list[Region] | None:
    """Split the refined (h, w) bool foreground mask into connected regions with holes.

    Called once per image, after refinement and before placement (``context.mask_downsample``
    is the mask's level-0 downsample). Return a list of :class:`gigapatch.Region` in level-0
    pixels (possibly empty), or None to leave it to the default (connected components with
    holes). Regions are numbered in list order; every patch records the region it lies in.
    """


@hookspec
def gigapatch_reads_pixels(context: ImageContext) -> bool | None:
    """Say whether this plugin's ``gigapatch_score_pixels`` scores this image's candidates.

    Called once per image after placement, before any candidate is read; every plugin is asked.
    Return True when it will (e.g. your domain is active and your pixel score is switched on).
    Candidates are read at full resolution only when some plugin returns True, so a run that
    needs no pixel score reads none (the built-in plugin says True for ``score.sharpness``).
    Return None (or False) otherwise.
    """


@hookspec
def gigapatch_score_pixels(
    patches: np.ndarray, coords: np.ndarray, context: ImageContext
) -> dict[str, np.ndarray] | None:
    """Score a batch of candidate patches from their full-resolution pixels.

    Called on batches of ``patches`` (B, size, size, 3) uint8 at the output geometry, with
    ``coords`` their (B, 2) int64 level-0 top-left x, y, when *some* plugin's
    ``gigapatch_reads_pixels`` said True, so it is also called when yours did not: check
    ``context.domain`` (and your switch) and return None. The candidates are those of
    ``gigapatch_score_patches`` (the foreground filter); they are read once and every plugin's
    scorer sees the same batch. Return a dict of (B,) or (B, ...) arrays: 1-D arrays become
    score columns (NaN for the patches that were not candidates); all are in
    ``context.pixels`` (candidate order) when ``gigapatch_score_patches`` runs (e.g. per-block
    statistics turned into an image-relative score there). Return None to add nothing.
    """


@hookspec
def gigapatch_score_patches(coords: np.ndarray, context: ImageContext) -> dict[str, np.ndarray] | None:
    """Score candidate patches.

    Called once per image with ``coords`` (N, 2) int64 level-0 top-left x, y of the candidates
    that passed the foreground filter (the mask's foreground within ``score.candidate_margin``
    of ``patch.min_foreground``), after every ``gigapatch_score_pixels`` batch. Return a dict of
    named (N,) float arrays (e.g. ``{"sharpness": ...}``); every plugin's columns are merged into
    the PatchSet's score table. A column that already exists (e.g. ``foreground`` measured on
    the pixels) replaces the candidates' values; the mask's estimate is then kept as
    ``mask_foreground``, and selection allows ``score.foreground_tolerance`` below the bar for
    those candidates. A new column is NaN for the patches that were not candidates. Return None
    to add nothing.
    """


@hookspec
def gigapatch_reject_patches(scores: dict[str, np.ndarray], context: ImageContext) -> dict[str, np.ndarray] | None:
    """The plugin's own rejection rules.

    Called once per image, after every scorer, with every score column (name -> (N,) array
    over all N placed patches; NaN where a column was not measured, e.g. below the foreground
    filter). Return a dict mapping a rejection reason (e.g. ``"pen"``) to an (N,) bool array,
    True where a patch must go for that reason (the same reason from two plugins is OR-ed).
    Each patch records the first reason it failed, in the order: the foreground rule, the
    plugins' reasons as they arrive, then the core's ``sharpness`` (``score.min_sharpness``),
    ``keep`` and ``top_n`` rules. The reason is the ``reason`` column of the table and
    ``rejected/reason`` in the h5. Return None to reject nothing.
    """


@hookspec
def gigapatch_patch_columns(coords: np.ndarray, context: ImageContext) -> dict[str, np.ndarray] | None:
    """Per-patch data that is not a score: where a patch is, what it is labelled.

    Called once per image after selection with ``coords`` (N, 2) int64 level-0 top-left x, y of
    every placed patch (kept and rejected). Return a dict of named (N,) arrays of any numeric
    dtype, or of strings (e.g. a satellite patch's ``epsg`` and its bounds in metres as float64,
    a metal patch's ``label`` from the true boxes). They are written beside the scores (a
    ``columns/<name>`` dataset in the h5, a column of the table) at their own dtype, but are not
    scores: selection never reads them. Return None to add nothing.
    """


@hookspec
def gigapatch_write_outputs(patchset: PatchSet, context: ImageContext, out_dir: Path) -> dict[str, Path] | None:
    """Write a domain's own files for one image (labels, georeferenced footprints, chips, STAC).

    Called once per image after the core has written its files into ``out_dir`` (only when a
    run writes outputs). Write every file to a temporary name and rename it (see
    :func:`gigapatch.atomic_path`); name files ``<image_id><suffix>``. Which files to write is the
    plugin's own setting (``plugin.<name>.*``, settable from the CLI with ``--set``). Return a
    dict mapping an output name to the path written, or None.
    """


@hookspec(firstresult=True)
def gigapatch_train(config: dict[str, Any], data: Path, out: Path, domain: str | None) -> dict[str, Any] | None:
    """Train a model on the labelled images in ``data``.

    Called by ``gigapatch train`` with the training config as a plain dict (the file's keys with
    the flags applied; validate it with :func:`gigapatch.training.validate_train_config`) and
    ``domain`` from ``--domain`` or the config's ``domain:`` (None when neither gives one).
    Return a summary dict (best metric, checkpoint paths), or None when this plugin does not
    train for ``domain``: the built-in generic trainer (a ``labels.csv`` of ``image_id, label``
    beside an ``images/`` folder) then runs.
    """


@hookspec(firstresult=True)
def gigapatch_demo(out: Path, domain: str, size: int | None, seed: int) -> dict[str, Any] | None:
    """Run the domain's demo: make a sample image with known content, tile it, write outputs.

    Called by ``gigapatch demo --domain D``; ``size`` is the requested image side in px (None =
    the domain's default). Return a dict with at least ``image`` (the sample's path), the output
    paths (``h5``, ``table``, ``overlay``...) and ``n_patches``; or None when ``domain`` is not
    yours.
    """


@hookspec
def gigapatch_cli_commands(app: Any) -> None:
    """Add a plugin's own commands to the ``gigapatch`` command line.

    Called once per process, when the command line starts, with ``app`` the ``typer.Typer``
    application: register commands with ``app.command("name")(function)`` (a domain's tools,
    e.g. ``gigapatch fit-normal --domain metal_surface``). Import what a command needs inside
    its body, so that other commands do not pay for it; raise :class:`gigapatch.ConfigError` or
    :class:`gigapatch.ImageError` for bad input (one line, no traceback). A name the core or
    another plugin already uses is refused with one line naming both. Return None.
    """


@hookspec
def gigapatch_tile_options() -> list[TileOption] | None:
    """Declare a plugin's own flags of ``gigapatch tile`` (``--bands 3,2,1``, ``--format geotiff``).

    Called once per process, the first time ``gigapatch tile`` parses its command line or shows
    its ``--help`` (never by the other commands). Return a list of :class:`gigapatch.TileOption`:
    a new flag that sets one config key, the value read as YAML exactly like ``--set KEY=VALUE``
    (``TileOption(("--bands",), key="plugin.satellite.bands", domain="satellite")``), or new
    values of a core flag that accepts them (``--format``, ``--geojson``), each a mapping of
    config overrides. An option with a ``domain`` sets that domain's config only. Import nothing
    heavy here: every ``gigapatch tile`` pays for it. A flag (or value) the core or another
    plugin already has is refused with one line naming both. Return None to add no flag.
    """
