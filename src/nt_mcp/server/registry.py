"""Every toolset of the server, and how a declared tool is bound onto the MCP server behind the guard.

Binding builds, for each `ToolSpec`, an entry function whose signature is the handler's flat
arguments (so the SDK derives the same input schema) plus the SDK's request context, and whose
return annotation is ``Annotated[CallToolResult, OutputModel]`` (so the SDK publishes the output
schema and passes the guard's result through unchanged).
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult

from nt_mcp.server.guard import Guard
from nt_mcp.tools import (
    backtesting,
    forecasting,
    odds,
    optimization,
    portfolio,
    prediction,
    risk,
    status,
    trading,
)
from nt_mcp.tools.registry import ToolSpec

TOOLSETS: tuple[list[ToolSpec], ...] = (
    status.TOOLS,
    trading.TOOLS,
    backtesting.TOOLS,
    optimization.TOOLS,
    odds.TOOLS,
    prediction.TOOLS,
    forecasting.TOOLS,
    risk.TOOLS,
    portfolio.TOOLS,
)
_CONTEXT_PARAM = "mcp_request_context"


def all_tools() -> list[ToolSpec]:
    specs = [spec for toolset in TOOLSETS for spec in toolset]
    names = [spec.name for spec in specs]
    duplicates = {name for name in names if names.count(name) > 1}
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
