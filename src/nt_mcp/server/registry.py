"""Every toolset of the server, and how a declared tool is bound onto the MCP server behind the guard.

A toolset is a named list of tools (a tools module's ``TOOLS``); a new toolset is one line in
`TOOLSETS`. ``NT_TOOLSETS`` (e.g. ``status,market,backtest``) exposes only the named ones, for
agents with small context windows; unset, every toolset is served.

Binding builds, for each `ToolSpec`, an entry function whose signature is the handler's flat
arguments (so the SDK derives the same input schema) plus the SDK's request context, and whose
return annotation is ``Annotated[CallToolResult, OutputModel]`` (so the SDK publishes the output
schema and passes the guard's result through unchanged).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult

from nt_mcp.server.guard import Guard
from nt_mcp.tools import (
    backtesting,
    forecasting,
    jobs,
    odds,
    optimization,
    portfolio,
    prediction,
    risk,
    status,
    trading,
)
from nt_mcp.tools.registry import ToolSpec

TOOLSETS: dict[str, list[ToolSpec]] = {
    "status": status.TOOLS,  # server_status, ping, get_audit_log
    "market": trading.MARKET_TOOLS,  # prices: get_bars, get_quote
    "trading": trading.TOOLS,  # the account, orders, execute_strategy
    "backtest": [*backtesting.TOOLS, *optimization.TOOLS],  # strategies, backtests, optimisation
    "odds": odds.TOOLS,  # sports odds, arbitrage, Kelly, margins (The Odds API or saved files)
    "prediction": prediction.TOOLS,  # Polymarket and Kalshi markets, EV, the paper ledger
    "analytics": [*forecasting.TOOLS, *risk.TOOLS, *portfolio.TOOLS],  # forecaster, risk, portfolio
    "jobs": jobs.TOOLS,  # start_job, get_job, cancel_job, list_jobs: long work in the background
}
_CONTEXT_PARAM = "mcp_request_context"


class UnknownToolsetError(ValueError):
    """``NT_TOOLSETS`` names a toolset that does not exist; the message lists the known ones."""


def toolset_names(setting: str) -> list[str]:
    """The toolsets ``NT_TOOLSETS`` asks for, checked (empty or blank: every toolset)."""
    names = [part.strip().lower() for part in setting.replace(" ", ",").split(",") if part.strip()]
    unknown = sorted(set(names) - set(TOOLSETS))
    if unknown:
        raise UnknownToolsetError(
            f"invalid setting NT_TOOLSETS: unknown toolset(s) {', '.join(unknown)}; known: {', '.join(TOOLSETS)}"
        )
    return list(dict.fromkeys(names)) or list(TOOLSETS)


def all_tools(toolsets: Sequence[str] | None = None) -> list[ToolSpec]:
    """The tools of ``toolsets`` (default: every toolset), in registry order; names must be unique."""
    chosen = TOOLSETS if toolsets is None else {name: TOOLSETS[name] for name in toolsets}
    specs = [spec for toolset in chosen.values() for spec in toolset]
    every = [spec.name for toolset in TOOLSETS.values() for spec in toolset]
    duplicates = {name for name in every if every.count(name) > 1}
    if duplicates:
        raise ValueError(f"tool names declared twice: {sorted(duplicates)}")
    return specs


def entry_point(spec: ToolSpec, guard: Guard) -> Any:
    """The function the SDK calls for ``spec``: flat arguments in, the guard's result out."""
    handler_sig = inspect.signature(spec.handler, eval_str=True)
    params = list(handler_sig.parameters.values())[1:]  # drop the ToolContext
    params.append(inspect.Parameter(_CONTEXT_PARAM, inspect.Parameter.KEYWORD_ONLY, annotation=Context))
    returns = Annotated[CallToolResult, spec.output_model]

    async def entry(**kwargs: Any) -> CallToolResult:
        mcp_context = kwargs.pop(_CONTEXT_PARAM, None)
        return await guard.run(spec, kwargs, mcp_context)

    entry.__name__ = spec.name
    entry.__doc__ = spec.description
    entry.__signature__ = handler_sig.replace(parameters=params, return_annotation=returns)  # type: ignore[attr-defined]
    entry.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    return entry
