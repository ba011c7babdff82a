"""Errors a user can cause. The CLI prints their message as one line, no traceback."""


class UserError(Exception):
    """A mistake in what the user asked for (unknown backend, bad file, ...)."""
