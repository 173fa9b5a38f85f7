"""The errors tsdtp raises for bad input. Each names the problem and what was expected."""


class TsdtpError(Exception):
    """Base class: every error that is the user's input, not a bug."""


class ConfigError(TsdtpError, ValueError):
    """A setting is unknown or out of range."""


class DataError(TsdtpError):
    """A data file is missing, malformed or empty, or a task is unknown."""


class CheckpointError(TsdtpError):
    """A run directory or checkpoint is missing, corrupt or incompatible."""


class RunBusyError(TsdtpError):
    """Another process is writing the same run directory (its lock file is held)."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (library messages run over several), for one-line errors."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
