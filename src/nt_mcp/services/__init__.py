"""Orchestration between tools and adapters: workflows that combine a broker or venue, storage and domain code.

``order_router`` (every order's one way to a broker: validate, risk-check, journal, send, never twice) and
``strategy_executor`` (signal -> target -> risk-checked orders, recorded runs). Arrows: tools -> services ->
(domain, adapters) -> infra; a service never imports a tool.
"""
