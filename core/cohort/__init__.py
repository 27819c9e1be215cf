"""Cohorts: many images tiled into one output folder, resumably, on one machine or a Dask cluster.

Modules
-------
:mod:`gigapatch.cohort.inputs`   files, folders, globs or a manifest (CSV / Parquet) -> a validated
                                 list of :class:`ImageTask`, every problem found before any work.
:mod:`gigapatch.cohort.records`  the per-image done records and the summary rebuilt from them.
:mod:`gigapatch.cohort.locks`    the per-image lock file held while an image's outputs are written.
:mod:`gigapatch.cohort.worker`   what one worker does with one image (opened inside the worker).
:mod:`gigapatch.cohort.executors`  where images are tiled: a local process pool, a Dask
                                 distributed cluster's executor, or the driver's own process.
:mod:`gigapatch.cohort.runner`   the one code path: one task per image submitted to a
                                 ``concurrent.futures.Executor``; sharding, skipping, retrying.

The output folder
-----------------
::

    <out>/<image_id>.h5, .yaml, .csv, _regions.csv, _overlay.png ...   the image's outputs
    <out>/.gigapatch/records/<image_id>.json    its done record, written LAST (atomically)
    <out>/.gigapatch/locks/<image_id>.lock      held while its outputs are written
    <out>/summary.csv (and summary.parquet)     rebuilt from all the records by every run

An image is done when, and only when, its record exists: a record is written after every output
of its image, so an interrupted image (Ctrl-C, SIGTERM, a killed worker) has no record and is
tiled again by the next run. A run that starts an image deletes its old record first.

The record (``<out>/.gigapatch/records/<image_id>.json``, schema 1)
-------------------------------------------------------------------
``schema``               1
``image_id``             the output name (unique in the cohort)
``path``                 the input file, as given (manifest paths made absolute)
``input_bytes``          its size when tiled (a changed input is tiled again)
``status``               ``"ok"``, ``"empty"`` (almost no foreground: loud, not an error) or
                         ``"error"``
``reason``               one line: why it is empty or failed (``""`` when ok); a GigapatchError's
                         text, or ``"<path>: <Type>: <message>"``, ``"timed out after N s"``,
                         ``"the worker process died ..."``
``n_patches``            kept patches (0 on error)
``n_regions``            regions the mask was segmented into (null on error)
``foreground_fraction``  share of the image that is foreground (null on error)
``coverage``             share of the foreground inside the kept patches (null on error)
``overlap``              share of the kept patches' area under 2+ patches (null on error)
``seconds``              wall time of the image in its worker (open, tile, write)
``warnings``             the warning lines logged while it was tiled (list of str)
``domain``               the domain it was tiled as (null when it failed before knowing)
``label``, ``split``     from the manifest (null without)
``config_hash``          :meth:`gigapatch.Config.hash` of its resolved config (null when the
                         config could not be resolved)
``versions``             ``{"gigapatch": ..., "python": ..., "numpy": ..., ...}`` of the worker
``outputs``              ``[{"kind": "h5", "path": "<image_id>.h5", "bytes": 1234}, ...]``: every
                         output, ``path`` relative to ``<out>``; a folder (extracted patches)
                         ends in ``/`` with ``bytes`` its total and ``files`` its file count;
                         kinds: h5, config, table, regions, overlay, geojson, patches and the
                         plugins' own (empty on error)
``thumbnail``            the overlay shrunk to 240 px wide, ``"data:image/jpeg;base64,..."``,
                         made by the worker from the picture it wrote (the report's thumbnail,
                         without decoding the PNG again); null without an overlay
``started``, ``finished`` ISO 8601 UTC times (milliseconds)
``worker``               ``"<host>:<pid>"`` of the process that tiled it
``run``                  the id of the run that wrote it

Read them with :func:`gigapatch.cohort.records.read_records` (all, sorted by image id) or
:func:`gigapatch.cohort.records.read_record` (one).
"""

from __future__ import annotations

from gigapatch.cohort.inputs import ImageTask, collect_tasks
from gigapatch.cohort.records import ImageRecord, read_record, read_records, write_summary
from gigapatch.cohort.runner import CohortRun, RunOptions, run_cohort, tile_many

__all__ = [
    "CohortRun",
    "ImageRecord",
    "ImageTask",
    "RunOptions",
    "collect_tasks",
    "read_record",
    "read_records",
    "run_cohort",
    "tile_many",
    "write_summary",
]
