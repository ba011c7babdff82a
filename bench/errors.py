"""Errors a user can cause. The CLI prints their message as one line, no traceback."""


class UserError(Exception):
    """A mistake in what the user asked for (unknown backend, bad file, ...)."""


class SkipCase(Exception):
    """Raised by a suite builder when this framework build or device does not offer
    what the case needs (e.g. emulated fp16, a fused optimizer an older torch lacks):
    the case is recorded ``skipped`` with the message, not ``error``."""
