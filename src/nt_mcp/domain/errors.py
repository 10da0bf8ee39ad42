"""Errors raised by the pure domain layer.

The domain knows nothing of the project's error hierarchy (it imports nothing outside
``nt_mcp.domain``). The tool layer maps :class:`DomainValueError` to the project's
``ValidationError``, carrying :attr:`DomainValueError.argument` as the offending argument name.
"""

from __future__ import annotations


class DomainValueError(ValueError):
    """A value given to the domain is unusable.

    ``argument`` names what was wrong (a parameter such as ``"slow"``, a column such as
    ``"close"``, or a file name); ``message`` says why, in words a user can act on.
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument
        self.message = message
