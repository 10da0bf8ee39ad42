"""The typed error hierarchy and its stable codes.

Every failure a client can see is a `TradingError`. The guard turns one into an `isError` tool
result carrying ``{"error": {"code", "message", "retryable", "retry_after_s"?, "context"?}}``.
Codes are stable strings: clients may branch on them. Every code a client can receive is listed,
with its meaning, in `ERROR_CODES` (and in the README's error table; a test keeps the two in step,
and the fuzz test fails on any code missing here). Messages are for people, at most
`MAX_MESSAGE_CHARS` characters, and never carry secrets or tracebacks. ``context`` holds extra,
non-secret facts (the argument name, the service). A retryable error always says how long to wait:
``retry_after_s`` is what the upstream or the limiter asked for, else the class's
``default_retry_after_s``.
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


MAX_MESSAGE_CHARS = 1000

# Every error code a tool result can carry: code -> (retryable, meaning). Keep the README table in step.
ERROR_CODES: dict[str, tuple[bool, str]] = {
    "VALIDATION_ERROR": (False, "an argument is wrong; context.argument names it; nothing was changed"),
    "NOT_FOUND": (False, "no such tool, order, backtest or symbol (for this principal)"),
    "UNAUTHENTICATED": (False, "no valid bearer token"),
    "FORBIDDEN": (False, "the token lacks the scope the tool needs (context.required_scope)"),
    "RATE_LIMITED": (True, "the principal's per-minute budget for this tool is spent; wait retry_after_s"),
    "TIMEOUT": (True, "the call did not finish within NT_TOOL_TIMEOUT_S and was stopped"),
    "DATABASE_ERROR": (True, "the database is unreachable (down, restarting, or out of connections)"),
    "NETWORK_ERROR": (True, "an upstream could not be reached"),
    "EXTERNAL_API_ERROR": (False, "an upstream answered with an error; retryable for 5xx and 429"),
    "SERVICE_UNAVAILABLE": (True, "an upstream's circuit breaker is open; context.service names it"),
    "BUSINESS_RULE": (False, "a rule said no"),
    "BROKER_REJECTED": (False, "the broker refused the request"),
    "ORDER_REJECTED": (False, "the order was rejected (by the broker or the paper account)"),
    "ORDER_NOT_CANCELABLE": (False, "the order already filled or was canceled"),
    "INSUFFICIENT_BUYING_POWER": (False, "not enough cash for the order"),
    "INSUFFICIENT_POSITION": (False, "selling more than the position holds"),
    "RISK_SYMBOL_NOT_ALLOWED": (False, "the symbol is on the deny list or off the allow list"),
    "RISK_MAX_NOTIONAL": (False, "the order's value exceeds NT_RISK_MAX_ORDER_NOTIONAL"),
    "RISK_MAX_POSITION_WEIGHT": (False, "the position would exceed NT_RISK_MAX_POSITION_WEIGHT of equity"),
    "RISK_MAX_OPEN_POSITIONS": (False, "a new symbol would exceed NT_RISK_MAX_OPEN_POSITIONS"),
    "RISK_MAX_ORDERS_PER_DAY": (False, "NT_RISK_MAX_ORDERS_PER_DAY orders were placed today"),
    "RISK_DAILY_LOSS_HALT": (False, "today's loss reached NT_RISK_DAILY_LOSS_LIMIT_PCT: no new risk today"),
    "MARKET_CLOSED": (False, "market orders only while the market is open"),
    "IDEMPOTENCY_KEY_REUSED": (
        False,
        "the idempotency_key was first used for a different request; context.field names the first difference",
    ),
    "IDEMPOTENCY_KEY_IN_USE": (
        True,
        "the first call with this idempotency_key is still settling; retry with the same key (never a second send)",
    ),
    "NOT_CONFIGURED": (False, "the tool needs settings that are not set; context.settings names them"),
    "EVENT_NOT_FOUND": (False, "The Odds API (or the saved file) has no such event"),
    "ODDS_API_KEY_REJECTED": (False, "The Odds API refused NT_ODDS_API_KEY"),
    "ODDS_QUOTA_EXHAUSTED": (False, "The Odds API usage credits are spent (OUT_OF_USAGE_CREDITS)"),
    "ODDS_PLAN_REQUIRED": (False, "historical odds need a paid The Odds API plan"),
    "ODDS_RATE_LIMITED": (True, "The Odds API's request frequency limit (EXCEEDED_FREQ_LIMIT); wait retry_after_s"),
    "ODDS_API_ERROR": (False, "The Odds API refused the request for another reason (its error_code is in the message)"),
    "LIVE_GATE_CLOSED": (False, "live orders need NT_TRADING_MODE=live and NT_LIVE_TRADING_ACKNOWLEDGED=true"),
    "LIVE_NOT_SUPPORTED": (False, "live orders are not offered on this venue (Polymarket)"),
    "LIVE_NOT_CONFIGURED": (False, "Kalshi live orders need NT_KALSHI_KEY_ID and NT_KALSHI_PRIVATE_KEY_FILE"),
    "PREDICTION_MAX_CONTRACTS": (False, "the order exceeds NT_PREDICTION_MAX_CONTRACTS"),
    "PREDICTION_MAX_ORDER_COST": (False, "the order's cost exceeds NT_PREDICTION_MAX_ORDER_COST"),
    "PREDICTION_MAX_EXPOSURE": (False, "the market exposure would exceed NT_PREDICTION_MAX_MARKET_EXPOSURE"),
    "OPTIMIZATION_INFEASIBLE": (
        False,
        "the portfolio constraints admit no solution; context.argument names what to relax",
    ),
    "INTERNAL": (False, "a bug: the server log has the details under context.correlation_id"),
}


def short_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis), so no input can make a message huge."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TradingError(Exception):
    """Base of every error a tool may raise on purpose."""

    code: str = "TRADING_ERROR"
    category: Category = Category.INTERNAL
    severity: Severity = Severity.MEDIUM
    retryable: bool = False
    default_retry_after_s: float = 1.0  # said to the client when retryable and nothing more precise is known

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
        message = short_text(message)
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
        retry_after = self.retry_after_s
        if retry_after is None and self.retryable:
            retry_after = self.default_retry_after_s
        if retry_after is not None:
            body["retry_after_s"] = round(retry_after, 3)
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
            argument = short_text(argument, 200)
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
    """The database cannot be reached now (down, shutting down, starting up, out of connections)."""

    code = "DATABASE_ERROR"
    category = Category.DATABASE
    severity = Severity.HIGH
    retryable = True
    default_retry_after_s = 2.0


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
