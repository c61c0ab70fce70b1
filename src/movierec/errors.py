"""Errors that speak to the user: what went wrong, where, and what to do."""

from __future__ import annotations

from pathlib import Path


class MovierecError(Exception):
    """Base class for errors the CLI reports as a one-line message and exit code 2."""


class DataError(MovierecError):
    """A data file is missing, malformed or inconsistent.

    The message names the file and, when known, the line, so that the user can open
    the file and see the problem.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = Path(path) if path is not None else None
        self.line = line
        self.reason = message
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)


class FetchError(MovierecError):
    """A dataset could not be downloaded or failed its checksum."""


class ParamsError(MovierecError):
    """``params.yaml`` (or a CLI flag) holds a value the pipeline cannot use."""
