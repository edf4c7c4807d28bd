"""User-facing errors.

A ``DominoSegError`` message says what is wrong, which file or config key it concerns and how
to fix it; the tools print it as one paragraph and exit with status 2 instead of a traceback.
Subclasses keep a single-string constructor so mmengine's registry can re-raise them with its
own prefix.
"""


class DominoSegError(Exception):
    """Base class of errors whose message is meant for the user."""


class DataError(DominoSegError, FileNotFoundError):
    """A data root, split or file is missing or malformed."""


class ConfigError(DominoSegError, ValueError):
    """A config key or value is invalid."""


class WeightsError(DominoSegError, FileNotFoundError):
    """Pretrained weights (CLIP, backbone) are missing or unusable."""


class CheckpointError(DominoSegError, ValueError):
    """A checkpoint is missing, unreadable, does not fit the configured model, or cannot be
    written."""


class TrainingError(DominoSegError, RuntimeError):
    """Training cannot go on (e.g. a non-finite loss with ``nan_policy=stop``)."""
