"""The long-lived things tools use, opened once when the server starts and closed when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from nt_mcp import __version__
from nt_mcp.adapters.brokers.base import Broker
from nt_mcp.adapters.data.market import MarketData, MarketDataHub
from nt_mcp.adapters.prediction.venues import PredictionVenues, build_venues
from nt_mcp.config import Settings
from nt_mcp.infra import migrate
from nt_mcp.infra.audit import AuditLog
from nt_mcp.infra.backtests import BacktestStore
from nt_mcp.infra.cache import Cache, build_cache
from nt_mcp.infra.db import Database, Health
from nt_mcp.infra.forecasts import ForecastStore
from nt_mcp.infra.jobs import JobStore
from nt_mcp.infra.ratelimit import RateLimiter
from nt_mcp.infra.redis_link import RedisLink
from nt_mcp.infra.resilience import Upstreams
from nt_mcp.infra.spool import DurableWriter, Replayer, Spool
from nt_mcp.services.cpu_work import CpuWork
from nt_mcp.services.forecasting import ForecastingService
from nt_mcp.services.jobs import JobRunner
from nt_mcp.services.odds import OddsService
from nt_mcp.services.order_router import OrderRouter
from nt_mcp.services.prediction_ledger import PredictionLedger, PredictionLimits
from nt_mcp.services.strategy_executor import StrategyExecutor
from nt_mcp.services.sweeps import SweepExecutor, build_sweeps


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: RedisLink | None
    cache: Cache
    limiter: RateLimiter
    upstreams: Upstreams
    spool: Spool
    writer: DurableWriter
    replayer: Replayer
    audit: AuditLog
    market_data: MarketData
    broker: Broker
    orders: OrderRouter
    executor: StrategyExecutor
    market_hub: MarketDataHub
    backtests: BacktestStore
    odds: OddsService
    prediction_venues: PredictionVenues
    prediction: PredictionLedger
    cpu: CpuWork
    forecasting: ForecastingService
    jobs: JobRunner
    sweeps: SweepExecutor
    version: str = __version__
    started_monotonic: float = field(default_factory=time.monotonic)
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        """Open storage (migrating it when ``NT_AUTO_MIGRATE`` is on), cache, rate limiter,
        upstream breakers and the spool, the market data source, the broker and the order router,
        and start replaying the spool in the background."""
        from nt_mcp.adapters.brokers.factory import build_broker, build_market_data, build_risk_limits

        db = Database(settings)
        if settings.auto_migrate:
            await migrate.ensure_current(db)
        link = RedisLink(settings.redis_url, settings.redis_probe_interval_s) if settings.redis_url else None
        spool = Spool(settings.data_home / "spool")
        writer = DurableWriter(db, spool)
        cache = build_cache(link, settings.cache_default_ttl_s)
        upstreams = Upstreams(settings)
        market_data = build_market_data(settings, upstreams)
        broker = build_broker(settings, db, market_data, upstreams)
        router = OrderRouter(
            db,
            broker,
            build_risk_limits(settings),
            settings.mode,
            writer,
            wait_s=settings.idempotency_wait_s,
            lease_s=settings.tool_timeout_s + 30,  # a claim outlives the call that made it
        )
        venues = build_venues(settings, upstreams, cache)
        prediction_limits = PredictionLimits(
            settings.prediction_max_contracts,
            settings.prediction_max_order_cost,
            settings.prediction_max_market_exposure,
        )
        market_hub = MarketDataHub(settings, upstreams, cache)
        cpu = CpuWork(settings.analytics_max_concurrent)
        services = cls(
            settings=settings,
            db=db,
            redis=link,
            cache=cache,
            limiter=RateLimiter(settings.rate_limit_per_minute, link),
            upstreams=upstreams,
            spool=spool,
            writer=writer,
            replayer=Replayer(db, spool, settings.spool_max_attempts),
            audit=AuditLog(db, writer, flush_ms=settings.audit_flush_ms),
            market_data=market_data,
            broker=broker,
            orders=router,
            executor=StrategyExecutor(db, writer, router, market_data, settings.mode),
            market_hub=market_hub,
            backtests=BacktestStore(db),
            odds=OddsService(settings, upstreams, cache, db, writer),
            prediction_venues=venues,
            prediction=PredictionLedger(db, venues, prediction_limits, settings.mode),
            cpu=cpu,
            forecasting=ForecastingService(ForecastStore(db), market_hub, cpu, settings),
            jobs=JobRunner(JobStore(db), {}, concurrency=settings.analytics_max_concurrent),
            sweeps=build_sweeps(settings.dask_scheduler),
        )
        from nt_mcp.tools.jobs import build_job_kinds

        services.jobs.kinds.update(build_job_kinds(services))
        await services.jobs.start()
        services._background.append(
            asyncio.create_task(services.replayer.run_forever(settings.spool_replay_interval_s))
        )
        return services

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic

    async def degraded_reasons(self, health: Health | None = None) -> list[str]:
        """What is down right now, in words; empty when everything answers. ``health``: a storage
        probe the caller already made (else one is made here)."""
        reasons = []
        health = health or await self.db.health()
        if not health.ok:
            reasons.append(
                f"{health.backend} database unreachable ({health.detail}); writes that must "
                "not be lost are spooled to local disk"
            )
        if self.redis is not None and not await self.redis.probe():
            reasons.append(self.redis.describe() or "Redis unreachable")
        open_breakers = [name for name, state in self.upstreams.states().items() if state != "closed"]
        if open_breakers:
            reasons.append(f"circuit breaker not closed for: {', '.join(open_breakers)}")
        pending = self.spool.count()
        if pending:
            reasons.append(f"{pending} write(s) waiting in the spool for replay")
        return reasons

    async def close(self) -> None:
        await self.jobs.stop()
        await self.sweeps.close()
        with contextlib.suppress(Exception):
            await self.audit.close()  # queued audit rows of read-only calls (spooled if the database is down)
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.replayer.replay_once()  # last chance to flush spooled rows
        await self.broker.close()
        closer: Any = getattr(self.market_data, "close", None)
        if closer is not None:
            await closer()
        await self.market_hub.close()
        await self.odds.close()
        await self.prediction_venues.close()
        await self.cache.close()
        if self.redis is not None:
            await self.redis.close()
        self.upstreams.close()
        await self.db.dispose()
