"""The surrogates' error type."""

from sopjax.errors import SopjaxError

__all__ = ["SurrogateError"]


class SurrogateError(SopjaxError):
    """A model does not fit its input (size, kind, checkpoint) or a training setting is invalid."""
