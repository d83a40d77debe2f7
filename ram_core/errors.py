"""Errors that name the problem in words a user can act on.

The CLI prints them without a traceback and the app shows them on the page; anything else is a bug.
"""


class RAMError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class CheckpointError(RAMError):
    """A checkpoint or weights file that cannot be used: missing, damaged, unsafe or mismatched."""


class ImageReadError(RAMError):
    """A file that is not a usable image: not an image, truncated, empty or too many pixels."""


class DatasetError(RAMError):
    """A dataset that cannot be read: missing photos, broken annotations, unknown classes."""
