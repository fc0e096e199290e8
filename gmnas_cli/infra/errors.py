"""User-facing errors: each becomes one line on stderr and a non-zero exit (see cli/app.py)."""


class GmnasError(Exception):
    """Base class of errors reported as one line without a traceback."""

    exit_code = 2


class ConfigError(GmnasError):
    """An impossible or inconsistent setting, found before any training."""


class DataError(GmnasError):
    """A missing or malformed data set."""


class StageError(GmnasError):
    """A stage cannot run: a missing predecessor, a changed config, a corrupt artefact."""


class TrainingDiverged(GmnasError):
    """A NaN or infinite loss."""

    exit_code = 3
