"""One exception family, so the CLI can turn any user error into one line and exit status 2."""


class FusetileError(ValueError):
    """A user-facing error whose message names the source, the bad value and what was expected."""


class CfgError(FusetileError):
    """A Darknet .cfg file (or size override) that cannot describe a network."""


class WeightsError(FusetileError):
    """A weights file that is unreadable, truncated, or does not match the cfg."""


class ImageError(FusetileError):
    """An input image that cannot be read."""
