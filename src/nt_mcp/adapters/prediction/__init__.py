"""Prediction-market venues: Polymarket (Gamma + CLOB, public) and Kalshi (trade-api/v2).

Plain httpx behind the resilience layer (`infra.resilience.Upstreams`: breaker + retries) and the
cache (`infra.cache.Cache`), with a client-side limiter per venue. Every venue answer is turned into
the venue-neutral models of `models`, each stamped with its venue and the time it was fetched.
"""
