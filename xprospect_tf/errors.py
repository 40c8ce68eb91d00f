"""User-facing errors.

Every failure a user can fix raises a subclass of :class:`XprospectError` whose
message names the file or setting at fault and says what to do. The CLI prints
the message without a traceback and exits non-zero.
"""


class XprospectError(Exception):
    """Base class of all errors the user can act on."""


class InputError(XprospectError, ValueError):
    """A file or array given as input is missing, corrupt or of the wrong kind."""


class ConfigError(XprospectError, ValueError):
    """A configuration value (YAML key, CLI option, argument) is invalid."""


class TensorSizeError(XprospectError):
    """A tensor or weight would exceed TensorFlow's limit of 2^31-1 elements per tensor
    (the paper, section 5.2, words it as "2^32 parameters per layer")."""
