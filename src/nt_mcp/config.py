"""One `Settings` object, read once at start from the environment (prefix ``NT_``) and ``.env``.

Zero configuration is a working server: stdio transport, a SQLite file in the user data
directory, in-process cache and rate limits, paper trading. Bad configuration is refused at
start with one line naming the setting (see `describe_settings_error`), never a traceback.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "NT_"
ALL_SCOPES = ("read", "backtest", "trade", "admin")
KALSHI_PRODUCTION_URL = "https://external-api.kalshi.com/trade-api/v2"
KALSHI_DEMO_URL = "https://external-api.demo.kalshi.co/trade-api/v2"
_DB_SCHEMES = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


# "N/unit" with N >= 1: one of the forms `limits.parse` accepts (the defaults are of this form).
_PLAIN_RATE = re.compile(r"[1-9][0-9]*/(second|minute|hour|day)")


def _default_data_home() -> Path:
    return Path(platformdirs.user_data_dir("nt-mcp", appauthor=False))


class Settings(BaseSettings):
    """Every knob of the server. Field names map to ``NT_<NAME>`` environment variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # transport
    transport: Literal["stdio", "http", "sse"] = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    # storage
    data_home: Path = Field(default_factory=_default_data_home)
    database_url: str | None = None
    db_pool_size: int = Field(10, ge=1, le=200)
    db_max_overflow: int = Field(10, ge=0, le=200)
    db_pool_timeout_s: float = Field(10.0, gt=0)
    db_pool_recycle_s: int = Field(1800, ge=-1)
    db_pool_pre_ping: bool = True
    db_slow_query_ms: float = Field(500.0, ge=0)
    db_connect_retries: int = Field(3, ge=1, le=20)
    auto_migrate: bool = True

    # cache and rate limits
    redis_url: str | None = None
    cache_default_ttl_s: float = Field(60.0, gt=0)
    rate_limit_per_minute: int = Field(120, ge=1)
    # audit rows of read-only calls are written in batches this often (0: before every reply)
    audit_flush_ms: float = Field(50.0, ge=0, le=5000)

    # resilience: retries, circuit breakers, the local spool for writes the database missed
    retry_max_attempts: int = Field(3, ge=1, le=10)
    retry_base_s: float = Field(0.5, ge=0)
    retry_max_backoff_s: float = Field(8.0, ge=0)
    retry_max_total_s: float = Field(20.0, ge=0)
    breaker_fail_max: int = Field(5, ge=1)
    breaker_reset_timeout_s: float = Field(30.0, gt=0)
    redis_probe_interval_s: float = Field(1.0, gt=0)
    spool_replay_interval_s: float = Field(2.0, gt=0)
    spool_max_attempts: int = Field(5, ge=1)

    # guard and per-call budgets
    tool_timeout_s: float = Field(120.0, gt=0)
    call_memory_mb: int = Field(1024, ge=64)  # what one call may use above the server's baseline (estimated)
    optimize_max_work: int = Field(1_000_000_000, ge=1_000)  # optimize_strategy: bars x combinations
    job_max_work: int = Field(1_000_000_000_000, ge=1_000)  # the same bound for a job (background=true / start_job)
    dask_scheduler: str = ""  # tcp://host:8786: sweeps of jobs and calls run on that dask.distributed cluster
    stdio_scopes: str = "read,backtest,trade"  # the local operator's: stdio, and HTTP with NT_HTTP_AUTH=none
    toolsets: str = ""  # comma separated toolset names (status, market, trading, backtest, ...); empty: all

    # trading mode: live needs both settings, anything else is paper
    trading_mode: str = "paper"
    live_trading_acknowledged: bool = False

    # broker: the paper broker (a simulated account in this server's storage) or Alpaca
    broker: Literal["paper", "alpaca"] = "paper"
    alpaca_api_key: SecretStr | None = None
    alpaca_secret_key: SecretStr | None = None
    alpaca_trading_url: str | None = None  # override of the trading base URL (a proxy); None = Alpaca's
    alpaca_data_url: str | None = None  # override of the market data base URL; None = Alpaca's
    alpaca_data_feed: Literal["iex", "sip", "delayed_sip"] = "iex"
    # where prices come from. Trading (paper broker quotes, get_quote, get_bars): Alpaca when this is
    # "alpaca" or NT_BROKER=alpaca, else synthetic. Backtests (data_source unset): this source, or when
    # unset the best configured: alpaca with keys, else files when data_dir holds data, else synthetic.
    market_data_source: Literal["synthetic", "files", "alpaca"] | None = None
    data_dir: Path | None = None  # <SYMBOL>.csv / <SYMBOL>.parquet bars for the "files" source

    # paper broker
    paper_starting_cash: Decimal = Field(Decimal("100000"), gt=0)
    paper_slippage_bps: Decimal = Field(Decimal("5"), ge=0, le=1000)
    paper_commission_per_order: Decimal = Field(Decimal("0"), ge=0)
    paper_commission_bps: Decimal = Field(Decimal("0"), ge=0, le=1000)
    paper_ignore_market_hours: bool = True
    paper_allow_short: bool = True  # a sell beyond the position opens a short (easy to borrow assumed)

    # idempotency: how long a call waits for another call with the same key to finish it
    idempotency_wait_s: float = Field(30.0, gt=0, le=600)

    # sports odds: The Odds API v4 when NT_ODDS_API_KEY is set, else saved responses in NT_ODDS_DIR, else none
    odds_api_key: SecretStr | None = None
    odds_api_base_url: str = "https://api.the-odds-api.com"
    odds_dir: Path | None = None  # <sport_key>.json (the /v4/sports/{sport}/odds response), <sport_key>.scores.json
    odds_files_format: Literal["decimal", "american"] = "decimal"  # the oddsFormat the files were saved with
    odds_ttl_s: float = Field(30.0, gt=0, le=3600)  # cache of odds, event odds and scores responses
    odds_sports_ttl_s: float = Field(21600.0, gt=0, le=604800)  # cache of the sports list (free upstream)
    odds_timeout_s: float = Field(10.0, gt=0, le=120)

    # pre-trade risk limits (0 disables a numeric limit; lists are comma-separated symbols)
    risk_max_order_notional: Decimal = Field(Decimal("25000"), ge=0)
    risk_max_position_weight: Decimal = Field(Decimal("0.25"), ge=0, le=10)
    risk_max_open_positions: int = Field(20, ge=0)
    risk_max_orders_per_day: int = Field(100, ge=0)
    risk_daily_loss_limit_pct: Decimal = Field(Decimal("0.05"), ge=0, le=1)
    risk_symbol_allowlist: str = ""
    risk_symbol_denylist: str = ""

    # prediction markets: Polymarket (Gamma + CLOB, public) and Kalshi (trade-api/v2; keys only for live orders)
    polymarket_gamma_url: str = "https://gamma-api.polymarket.com"
    polymarket_clob_url: str = "https://clob.polymarket.com"
    kalshi_api_url: str = KALSHI_PRODUCTION_URL  # KALSHI_DEMO_URL for demo keys
    kalshi_key_id: str | None = None
    kalshi_private_key_file: Path | None = None
    prediction_http_timeout_s: float = Field(10.0, gt=0, le=120)
    polymarket_requests_per_s: float = Field(10.0, gt=0, le=100)  # Gamma allows 300 /markets per 10 s
    kalshi_requests_per_s: float = Field(8.0, gt=0, le=100)  # Kalshi's basic tier allows 20 reads/s
    prediction_max_contracts: Decimal = Field(Decimal("1000"), gt=0)
    prediction_max_order_cost: Decimal = Field(Decimal("500"), gt=0)
    prediction_max_market_exposure: Decimal = Field(Decimal("2000"), gt=0)
    # analytics: forecasters, risk, portfolios (CPU work runs in worker threads, this many at once)
    analytics_max_concurrent: int = Field(1, ge=1, le=16)
    forecast_max_bars: int = Field(5000, ge=200, le=50_000)  # bars a forecaster trains on, at most
    forecast_model_max_age_s: float = Field(86_400.0, gt=0)  # `forecast` reuses a model younger than this
    analytics_max_symbols: int = Field(50, ge=2, le=500)  # symbols per portfolio / risk call

    # auth (HTTP transports): HS256 with a shared secret, or RS256/ES256/EdDSA with a key file or JWKS
    jwt_secret: SecretStr | None = None
    jwt_public_key_file: Path | None = None
    jwt_jwks_url: str | None = None
    jwt_algorithms: str | None = None  # default: HS256 with a secret, RS256,ES256,EdDSA with public keys
    jwt_issuer: str = "nt-mcp"
    jwt_audience: str | None = None  # default: the canonical /mcp URL
    jwt_leeway_s: float = Field(30.0, ge=0, le=300)
    jwt_typ: str | None = None

    # HTTP transports
    http_auth: Literal["jwt", "none"] = "jwt"  # none: no token, local operator; loopback host only
    public_url: str | None = None  # canonical external base URL, e.g. https://mcp.example.com
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    http_redirect_port: int | None = Field(None, ge=1, le=65535)
    allowed_hosts: str = ""  # comma separated Host values, "name:*" for any port; default from host/port
    allowed_origins: str = ""  # comma separated origins; default the allowed hosts over http(s)
    max_request_body_bytes: int = Field(1_048_576, ge=1024)
    http_rate_limit: str = "300/minute"
    auth_failure_limit: str = "10/minute"
    metrics_allow_cidrs: str = ""  # empty: any client may read /metrics
    forwarded_allow_ips: str | None = None  # trust X-Forwarded-For from these proxies (off by default)
    shutdown_grace_s: float = Field(30.0, ge=0, le=3600)
    http_header_timeout_s: float = Field(10.0, gt=0, le=300)  # request line + headers must arrive within this
    # streamable HTTP: answer a POST with one JSON body instead of an SSE stream (no progress or log
    # notifications on it); stateless: no session, any replica serves any request (no resumable streams)
    http_json_response: bool = False
    http_stateless: bool = False

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("http_auth", mode="before")
    @classmethod
    def _lower_auth(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        scheme, sep, rest = value.strip().partition("://")
        if not sep or scheme not in _DB_SCHEMES or not rest:
            raise ValueError("must look like postgresql://user:pass@host:5432/db or sqlite:///path/to/file.db")
        return f"{_DB_SCHEMES[scheme]}://{rest}"

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        scheme, sep, rest = value.strip().partition("://")
        if scheme not in {"redis", "rediss", "unix"} or not sep or not rest:
            raise ValueError("must look like redis://host:6379/0")
        return value.strip()

    @field_validator("jwt_secret")
    @classmethod
    def _check_jwt_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes long")
        return value

    @field_validator("alpaca_api_key", "alpaca_secret_key", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("data_dir", mode="before")
    @classmethod
    def _blank_dir_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("odds_api_key", "odds_dir", mode="before")
    @classmethod
    def _blank_odds_setting_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("odds_api_base_url")
    @classmethod
    def _check_odds_base_url(cls, value: str) -> str:
        scheme, sep, rest = value.strip().partition("://")
        if scheme not in {"http", "https"} or not sep or not rest or "?" in rest:
            raise ValueError("must be an http(s) base URL without a query, e.g. https://api.the-odds-api.com")
        return value.strip().rstrip("/")

    @field_validator("http_rate_limit", "auth_failure_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        if _PLAIN_RATE.fullmatch(value):  # a subset of what limits parses: skips importing it at every start
            return value
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError("must look like 300/minute or 10/second") from None
        return value

    @field_validator("metrics_allow_cidrs")
    @classmethod
    def _check_cidrs(cls, value: str) -> str:
        import ipaddress

        for part in _split_scopes(value):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"{part!r} is not a network like 10.0.0.0/8") from None
        return value

    @field_validator("public_url", "jwt_jwks_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        scheme, sep, rest = value.strip().partition("://")
        if scheme not in {"http", "https"} or not sep or not rest:
            raise ValueError("must be an http(s) URL")
        return value.strip().rstrip("/")

    @field_validator("stdio_scopes")
    @classmethod
    def _check_scopes(cls, value: str) -> str:
        unknown = sorted(set(_split_scopes(value)) - set(ALL_SCOPES))
        if unknown:
            raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(ALL_SCOPES)}")
        return value

    @model_validator(mode="after")
    def _check_live_gate(self) -> Settings:
        if self.trading_mode.strip().lower() == "live" and not self.live_trading_acknowledged:
            raise ValueError("NT_TRADING_MODE=live also needs NT_LIVE_TRADING_ACKNOWLEDGED=true; refusing to start")
        return self

    @model_validator(mode="after")
    def _check_alpaca_keys(self) -> Settings:
        if self.broker == "alpaca" or self.market_data_source == "alpaca":
            missing = [
                f"{ENV_PREFIX}{name.upper()}"
                for name in ("alpaca_api_key", "alpaca_secret_key")
                if not (getattr(self, name) and getattr(self, name).get_secret_value().strip())
            ]
            if missing:
                which = "NT_BROKER=alpaca" if self.broker == "alpaca" else "NT_MARKET_DATA_SOURCE=alpaca"
                raise ValueError(f"{which} needs {' and '.join(missing)}; refusing to start")
        return self

    @model_validator(mode="after")
    def _check_files_source(self) -> Settings:
        if self.market_data_source == "files" and self.data_dir is None:
            raise ValueError("NT_MARKET_DATA_SOURCE=files needs NT_DATA_DIR; refusing to start")
        return self

    @field_validator("polymarket_gamma_url", "polymarket_clob_url", "kalshi_api_url")
    @classmethod
    def _check_venue_url(cls, value: str) -> str:
        scheme, sep, rest = value.strip().partition("://")
        if scheme not in {"http", "https"} or not sep or not rest:
            raise ValueError("must be an http(s) URL")
        return value.strip().rstrip("/")

    @field_validator("kalshi_key_id", "kalshi_private_key_file", mode="before")
    @classmethod
    def _blank_kalshi_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_kalshi_keys(self) -> Settings:
        if (self.kalshi_key_id is None) != (self.kalshi_private_key_file is None):
            raise ValueError("NT_KALSHI_KEY_ID and NT_KALSHI_PRIVATE_KEY_FILE go together; set both or neither")
        if self.kalshi_private_key_file is not None and not self.kalshi_private_key_file.is_file():
            raise ValueError("NT_KALSHI_PRIVATE_KEY_FILE does not name a readable file")
        return self

    @model_validator(mode="after")
    def _check_tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("NT_TLS_CERT_FILE and NT_TLS_KEY_FILE go together; set both or neither")
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def base_url(self) -> str:
        """The server's canonical external base URL: ``NT_PUBLIC_URL`` or scheme://host:port."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls_enabled else 'http'}://{host}:{self.port}"

    @property
    def resource_url(self) -> str:
        """The canonical URL of the MCP endpoint: the default token audience (RFC 8707 resource)."""
        return f"{self.base_url}/mcp"

    @property
    def token_audience(self) -> str:
        return self.jwt_audience or self.resource_url

    @property
    def host_allow_list(self) -> list[str]:
        """Host header values accepted (DNS-rebinding protection); ``name:*`` matches any port."""
        configured = _split_list(self.allowed_hosts)
        if configured:
            return configured
        hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        if self.host not in {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"}:  # noqa: S104
            hosts.append(f"{self.host}:*")
        if self.public_url:
            netloc = self.public_url.partition("://")[2].split("/")[0]
            hosts += [netloc] if ":" in netloc.rsplit("]", 1)[-1] else [netloc, f"{netloc}:*"]
        return hosts

    @property
    def origin_allow_list(self) -> list[str]:
        configured = _split_list(self.allowed_origins)
        if configured:
            return configured
        origins = [f"{scheme}://{host}" for host in self.host_allow_list for scheme in ("http", "https")]
        return origins + [o.removesuffix(":*") for o in origins if o.endswith(":*")]

    @property
    def mode(self) -> Literal["paper", "live"]:
        """``live`` only when both live settings say so; anything else, typos included, is paper."""
        if self.trading_mode.strip().lower() == "live" and self.live_trading_acknowledged:
            return "live"
        return "paper"

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL to use: ``NT_DATABASE_URL`` or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_home / 'nt-mcp.sqlite3'}"

    @property
    def symbol_allowlist(self) -> frozenset[str]:
        """Symbols that may be traded (empty: all)."""
        return frozenset(_split_scopes(self.risk_symbol_allowlist.upper()))

    @property
    def symbol_denylist(self) -> frozenset[str]:
        """Symbols that may never be traded."""
        return frozenset(_split_scopes(self.risk_symbol_denylist.upper()))

    @property
    def local_scopes(self) -> frozenset[str]:
        """Scopes of the local operator (stdio, in-process clients, HTTP with ``NT_HTTP_AUTH=none``)."""
        return frozenset(_split_scopes(self.stdio_scopes))


def _split_scopes(value: str) -> list[str]:
    return [part for part in value.replace(",", " ").split() if part]


def _split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def describe_settings_error(error: ValidationError) -> str:
    """One line naming the first bad setting, e.g. ``NT_PORT: Input should be ...``."""
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "__root__"]
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:
        return f"invalid configuration: {message}"
    return f"invalid setting {ENV_PREFIX}{loc[0].upper()}: {message}"


def load_settings() -> Settings:
    """Read the settings from the environment. Raises pydantic's ValidationError when they are bad."""
    return Settings()
