"""The one error type users see: it names the thing (file, variable, key, shape) and what was expected."""

from __future__ import annotations


class EarthportError(Exception):
    """Base class for errors earthport reports to users as one clear line."""


class ConfigError(EarthportError):
    """A configuration file, key or value (training, model, ``--set``) that is unknown or cannot be used."""


class DataError(EarthportError):
    """A file, variable, key or array that is missing, malformed or not what was expected."""

    def __init__(self, where: object, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")
