"""The one exception type for user mistakes.

Anything a user can get wrong (a recipe key, a data file, a run folder, a layer that does not fit)
raises :class:`NeurocoreError` with a message that names the offending thing. The CLI prints the
message alone, without a traceback, and exits with status 2. Programming errors stay ordinary
Python exceptions so that they keep their traceback.
"""

from __future__ import annotations


class NeurocoreError(Exception):
    """A user-facing error: the message names the file, key, layer or limit that is wrong."""


class DataError(NeurocoreError):
    """A data file is missing, truncated, corrupt or inconsistent."""


class RecipeError(NeurocoreError):
    """A recipe or a ``--set`` override does not validate."""


class RunDirError(NeurocoreError):
    """A run folder is missing pieces or does not match the recipe."""
