"""Exceptions that the CLI turns into one line on stderr (file + problem), never a traceback."""

from __future__ import annotations


class GigapatchError(Exception):
    """Base class: a problem the user can fix, reported as one line."""


class ImageError(GigapatchError):
    """An input file that cannot be opened or read (missing, empty, truncated, unsupported)."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(GigapatchError):
    """An invalid configuration (unknown key, bad value, impossible combination)."""


class OutputError(GigapatchError):
    """An output that cannot be written (a full disk, a file size limit, a read-only folder)."""


class ResolutionError(GigapatchError):
    """A physical size (mpp / magnification) was asked for an image whose resolution is unknown."""
