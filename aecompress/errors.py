"""Error types raised by the library; only the CLI turns them into exit codes."""


class AecError(Exception):
    """Base class for every failure the user should see as a one-line message."""


class UsageError(AecError):
    """The command was asked for something it cannot do (an option out of range, options that
    conflict, an unknown codec): the CLI exits with 2, as for its own usage errors."""


class FormatError(AecError):
    """An .aec file is malformed, truncated, corrupt or of an unsupported version."""


class ModelMismatchError(AecError):
    """An .aec file names a model other than the one loaded."""


class ImageError(AecError):
    """An input image cannot be read or is of an unsupported kind."""


class CheckpointError(AecError):
    """A model checkpoint is missing, unreadable or inconsistent."""


class ModelNotFoundError(CheckpointError):
    """No available model has the id and fingerprint that an .aec file names."""
