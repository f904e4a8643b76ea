"""The one exception type for user mistakes.

Anything the user can fix (a missing file, a guide smaller than the target, NaN in
the input, an output that already exists) raises :class:`InputError` with a one-line
message that names the file or argument and the problem. The command line prints
that line and exits with a non-zero code, without a traceback; library users catch
it like any ``ValueError``.
"""

from __future__ import annotations


class InputError(ValueError):
    """A problem with the user's input, stated in one line.

    Parameters
    ----------
    message:
        What is wrong, e.g. ``"the guide is smaller than the target"``.
    source:
        The file or argument it concerns (a path, ``"--scale"``, ``"target"``);
        prefixed to the message as ``"{source}: {message}"`` when given.

    Examples
    --------
    >>> str(InputError("not a PNG, TIFF or NPY file", source="a.txt"))
    'a.txt: not a PNG, TIFF or NPY file'
    """

    def __init__(self, message: str, source: str | None = None) -> None:
        self.source = source
        self.problem = message
        text = f"{source}: {message}" if source else message
        super().__init__(" ".join(text.split()))
