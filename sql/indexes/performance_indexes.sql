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

-- nt_mcp.adapters.brokers.paper.PaperBroker.fills_since_query: a principal's fills of today, undone to find
-- the equity at the previous session's close (day_start_equity, the daily-loss halt).
CREATE INDEX IF NOT EXISTS ix_fills_principal_filled ON fills (principal, filled_at);

-- nt_mcp.infra.odds_history.OddsHistory.event_query: an event's stored odds in time order (analyze_odds_movement).
CREATE INDEX IF NOT EXISTS ix_odds_history_event ON odds_history (event_id, last_update, id);
-- nt_mcp.services.prediction_ledger.PredictionLedger.orders_query: a principal's prediction orders,
-- newest first (get_prediction_orders, and the sweep of resting paper orders).
CREATE INDEX IF NOT EXISTS ix_prediction_orders_principal_created ON prediction_orders (principal, created_at DESC);

-- nt_mcp.services.prediction_ledger.PredictionLedger.open_orders_query: a principal's open orders in one
-- market (exposure limit and contracts already offered, at every order). Partial: only open orders.
CREATE INDEX IF NOT EXISTS ix_prediction_orders_open ON prediction_orders (principal, venue, market_id)
    WHERE status IN ('pending', 'open', 'pending_submit');

-- nt_mcp.services.prediction_ledger.PredictionLedger.fills_query: the fills of the orders being shown.
CREATE INDEX IF NOT EXISTS ix_prediction_fills_order ON prediction_fills (order_id, id);

-- nt_mcp.services.prediction_ledger.PredictionLedger.latest_snapshot_query: the newest stored top of book of
-- a market side (the mark of a position while its venue is down).
CREATE INDEX IF NOT EXISTS ix_prediction_snapshots_latest
    ON prediction_price_snapshots (venue, market_id, side, fetched_at DESC);

-- nt_mcp.infra.forecasts.ForecastStore.latest_query: a principal's newest forecaster of one series
-- (symbol, timeframe, data source), the fresh model `forecast` reuses.
CREATE INDEX IF NOT EXISTS ix_neural_models_series
    ON neural_models (principal, symbol, timeframe, data_source, created_at DESC);

-- nt_mcp.infra.forecasts.ForecastStore.recent_query: a principal's newest forecasters (list_models).
CREATE INDEX IF NOT EXISTS ix_neural_models_principal_created ON neural_models (principal, created_at DESC);

-- nt_mcp.infra.forecasts.ForecastStore.forecast_counts_query: forecasts made with the listed models (list_models).
CREATE INDEX IF NOT EXISTS ix_forecasts_model_created ON forecasts (model_id, created_at);
