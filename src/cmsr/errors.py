"""The one exception type for user mistakes, and how messages state sizes and failures.

Anything the user can fix (a missing file, a guide smaller than the target, NaN in
the input, an output that already exists) raises :class:`InputError` with a one-line
message that names the file or argument and the problem. The command line prints
that line and exits with a non-zero code, without a traceback; library users catch
it like any ``ValueError``.
"""

from __future__ import annotations

import traceback


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


def describe_shape(shape: tuple[int, ...]) -> str:
    """An image size as messages state it, width x height (x bands).

    Examples
    --------
    >>> describe_shape((480, 640, 3))
    '640x480x3'
    >>> describe_shape((60, 80))
    '80x60'
    """
    return "x".join(str(s) for s in shape[:2][::-1]) + (f"x{shape[2]}" if len(shape) == 3 else "")


def one_line(error: BaseException) -> str:
    """What went wrong, in one line: an :class:`InputError` as it is; anything else with its
    type and the function that raised it (a run that failed, recorded as the others go on).

    Examples
    --------
    >>> one_line(InputError("is empty", source="a.png"))
    'a.png: is empty'
    >>> one_line(ZeroDivisionError("division by zero"))
    'ZeroDivisionError: division by zero'
    """
    if isinstance(error, InputError):
        text = str(error)
    else:
        frames = traceback.extract_tb(error.__traceback__)
        where = f" ({frames[-1].name})" if frames else ""
        text = f"{type(error).__name__}: {error}{where}"
    return " ".join(text.split())
