"""The one base class for "bad input, clear message" errors.

Every error whose message is written for the user (an unreadable image, a folder that is not
there, a checkpoint of the wrong kind, an unknown status name) derives from `UserError`. The
command line and the window show such an error as its message alone; any other exception is
shown as `TypeName: message`, since it is a bug or a surprise and its type says something.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input with a message meant for the user: shown as str(e), without the type name."""


class BadValue(UserError, ValueError):
    """A value given by the user that is not allowed (an unknown status, a count below 1).

    Still a ValueError, so `except ValueError` callers keep working.
    """


def describe(e: BaseException) -> str:
    """The message for the user: str(e) for a UserError, 'TypeName: message' otherwise."""
    return str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
