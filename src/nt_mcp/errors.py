"""The typed error hierarchy and its stable codes.

Every failure a client can see is a `TradingError`. The guard turns one into an `isError` tool
result whose structured content is ``{"error": {"code", "message", "retryable", "retry_after_s"?}}``.
Codes are stable strings: clients may branch on them. Messages are for people and never carry
secrets or tracebacks. ``context`` holds extra, non-secret facts (the argument name, the service).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Category(StrEnum):
    NETWORK = "network"
    VALIDATION = "validation"
    AUTHENTICATION = "authentication"
    AUTHORIZATION = "authorization"
    RATE_LIMIT = "rate_limit"
    EXTERNAL_API = "external_api"
    DATABASE = "database"
    BUSINESS_LOGIC = "business_logic"
    INTERNAL = "internal"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class TradingError(Exception):
    """Base of every error a tool may raise on purpose."""

    code: str = "TRADING_ERROR"
    category: Category = Category.INTERNAL
    severity: Severity = Severity.MEDIUM
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool | None = None,
        retry_after_s: float | None = None,
        severity: Severity | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable
        if severity is not None:
            self.severity = severity
        self.retry_after_s = retry_after_s
        self.context: dict[str, Any] = dict(context or {})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form a client receives under ``"error"``."""
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
            "category": str(self.category),
        }
        if self.retry_after_s is not None:
            body["retry_after_s"] = round(self.retry_after_s, 3)
        if self.context:
            body["context"] = self.context
        return body


class NetworkError(TradingError):
    code = "NETWORK_ERROR"
    category = Category.NETWORK
    retryable = True


class ValidationError(TradingError):
    """Bad input. ``argument`` names the offending argument; nothing was changed."""

    code = "VALIDATION_ERROR"
    category = Category.VALIDATION
    severity = Severity.LOW

    def __init__(self, message: str, *, argument: str | None = None, **kwargs: Any) -> None:
        context = dict(kwargs.pop("context", None) or {})
        if argument is not None:
            context["argument"] = argument
        super().__init__(message, context=context, **kwargs)
        self.argument = argument


class AuthenticationError(TradingError):
    code = "UNAUTHENTICATED"
    category = Category.AUTHENTICATION
    severity = Severity.HIGH


class AuthorizationError(TradingError):
    code = "FORBIDDEN"
    category = Category.AUTHORIZATION
    severity = Severity.HIGH


class RateLimitError(TradingError):
    code = "RATE_LIMITED"
    category = Category.RATE_LIMIT
    severity = Severity.LOW
    retryable = True

    def __init__(self, message: str, *, retry_after_s: float, **kwargs: Any) -> None:
        super().__init__(message, retry_after_s=max(0.0, retry_after_s), **kwargs)


class ExternalAPIError(TradingError):
    """An upstream service answered with an error. 5xx and 429 are retryable, other 4xx are not."""

    code = "EXTERNAL_API_ERROR"
    category = Category.EXTERNAL_API

    def __init__(
        self,
        message: str,
        *,
        service: str,
        status: int | None = None,
        retry_after_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        context = dict(kwargs.pop("context", None) or {})
        context["service"] = service
        if status is not None:
            context["status"] = status
        retryable = kwargs.pop("retryable", None)
        if retryable is None:
            retryable = status is None or status == 429 or status >= 500
        super().__init__(message, retryable=retryable, retry_after_s=retry_after_s, context=context, **kwargs)
        self.service = service
        self.status = status


class ServiceUnavailableError(ExternalAPIError):
    """An upstream is known to be down (open circuit breaker): fail fast, try again later."""

    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str, *, service: str, retry_after_s: float | None = None) -> None:
        super().__init__(message, service=service, retryable=True, retry_after_s=retry_after_s)


class DatabaseError(TradingError):
    code = "DATABASE_ERROR"
    category = Category.DATABASE
    severity = Severity.HIGH
    retryable = True


class BusinessLogicError(TradingError):
    """A rule said no: a risk limit, buying power, a market that is closed."""

    code = "BUSINESS_RULE"
    category = Category.BUSINESS_LOGIC


class NotFoundError(TradingError):
    code = "NOT_FOUND"
    category = Category.VALIDATION
    severity = Severity.LOW


class InternalError(TradingError):
    """Anything unexpected. Carries only a correlation id; the traceback stays in the log."""

    code = "INTERNAL"
    category = Category.INTERNAL
    severity = Severity.CRITICAL

    def __init__(self, correlation_id: str) -> None:
        super().__init__(
            f"Internal error; the server log has the details under correlation id {correlation_id}.",
            context={"correlation_id": correlation_id},
        )
        self.correlation_id = correlation_id
