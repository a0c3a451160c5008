"""Error types that carry a message meant for the user.

The CLI prints ``error: <message>`` for these and exits with :attr:`exit_code`; any other
exception is a bug and keeps its traceback under ``--debug``.
"""

from __future__ import annotations


class DenseNetError(Exception):
    """Base class for failures caused by the user's input or environment (exit status 1)."""

    exit_code = 1


class UsageError(DenseNetError):
    """A bad command-line value or option combination (exit status 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """An invalid configuration value, preset or model name."""


class DataError(DenseNetError):
    """A dataset that is missing, corrupt or does not match what was expected."""


class DatasetNotFoundError(DataError):
    """No copy of a dataset was found and it could not be downloaded."""


class ChecksumError(DataError):
    """A file's content does not match its known checksum."""


class RunDirError(DenseNetError):
    """A folder that is not a (complete) run directory."""


class UnsafeFileError(DenseNetError):
    """A weights file that would need unpickling arbitrary code to load."""


class WeightsError(DenseNetError):
    """A weights file that is missing, unreadable or does not fit the model."""


class InputSizeError(DenseNetError):
    """An input too small (or otherwise unfit) for a model."""
