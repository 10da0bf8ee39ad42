-- PostgreSQL performance indexes, applied by `nt-mcp db upgrade` after the migrations.
-- Each index names the query it serves; tests/integration/test_indexes.py seeds the table,
-- runs that query through EXPLAIN and checks the planner chooses the index.

-- nt_mcp.infra.audit.AuditLog.recent: a principal's latest tool calls, newest first.
CREATE INDEX IF NOT EXISTS ix_audit_log_principal_ts ON audit_log (principal, ts DESC);

-- nt_mcp.infra.audit.AuditLog.error_count_since: failed calls in the last hour (server_status).
-- Partial: only failures are indexed, a small fraction of the log.
CREATE INDEX IF NOT EXISTS ix_audit_log_failures_ts ON audit_log (ts DESC) WHERE outcome <> 'ok';

-- nt_mcp.infra.spool.Replayer.unresolved_query: unresolved dead letters, oldest first (`nt-mcp dlq`).
-- Partial: resolved letters drop out of the index.
CREATE INDEX IF NOT EXISTS ix_dead_letters_unresolved ON dead_letters (id) WHERE resolved_at IS NULL;

-- nt_mcp.services.order_router.OrderRouter.orders_since_query: orders a principal placed today
-- (the max-orders-per-day risk check); also nt_mcp.adapters.brokers.paper.PaperBroker.list_orders_query.
CREATE INDEX IF NOT EXISTS ix_orders_principal_created ON orders (principal, created_at DESC);

-- nt_mcp.adapters.brokers.paper.PaperBroker.open_orders_query: a principal's resting paper orders,
-- swept against the latest prices on every read. Partial: only resting orders are indexed.
CREATE INDEX IF NOT EXISTS ix_orders_open_principal ON orders (principal, created_at)
    WHERE status IN ('new', 'accepted');

-- nt_mcp.infra.backtests.BacktestStore.recent_query: a principal's latest backtests, newest first (list_backtests).
CREATE INDEX IF NOT EXISTS ix_backtests_principal_created ON backtests (principal, created_at DESC);

-- nt_mcp.infra.forecasts.ForecastStore.latest_query: a principal's newest forecaster of one series
-- (symbol, timeframe, data source), the fresh model `forecast` reuses.
CREATE INDEX IF NOT EXISTS ix_neural_models_series
    ON neural_models (principal, symbol, timeframe, data_source, created_at DESC);

-- nt_mcp.infra.forecasts.ForecastStore.recent_query: a principal's newest forecasters (list_models).
CREATE INDEX IF NOT EXISTS ix_neural_models_principal_created ON neural_models (principal, created_at DESC);

-- nt_mcp.infra.forecasts.ForecastStore.forecast_counts_query: forecasts made with the listed models (list_models).
CREATE INDEX IF NOT EXISTS ix_forecasts_model_created ON forecasts (model_id, created_at);
