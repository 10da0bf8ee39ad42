"""MCP resources: stored backtests and strategy documentation, read-only views of what tools return.

- ``backtest://{backtest_id}``: one of the caller's stored backtests as JSON (parameters, settings,
  metrics, data provenance and EVERY trade, as get_backtest returns them), followed by its equity
  chart (``image/png``, also readable alone as ``backtest://{backtest_id}/equity.png``).
- ``strategy://{name}``: a strategy's rule, parameters (type, bounds, default) and the fill
  conventions, as Markdown.

A resource family mirrors a tool (``get_backtest``, ``get_strategy_info``) and follows its rules:
it exists only when that tool is served (``NT_TOOLSETS``) and the caller's scopes allow the tool;
another principal's backtest is not found, exactly as with get_backtest. `resources/list` names the
strategy documents and the caller's 20 latest backtests; the templates cover every id.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from mcp.shared.exceptions import MCPError
from mcp_types import BlobResourceContents, Resource, ResourceTemplate, TextResourceContents

from nt_mcp.domain.strategies import STRATEGIES
from nt_mcp.tools.backtesting import CONVENTIONS, stored_backtest_out
from nt_mcp.tools.registry import Principal
from nt_mcp.tools.services import Services

RESOURCE_NOT_FOUND = -32002  # the MCP specification's code for an unknown resource
LISTED_BACKTESTS = 20

BACKTEST_URI = re.compile(r"^backtest://(?P<id>[A-Za-z0-9_-]{1,64})(?P<chart>/equity\.png)?$")
STRATEGY_URI = re.compile(r"^strategy://(?P<name>[A-Za-z0-9_]{1,64})$")

Contents = TextResourceContents | BlobResourceContents
MayCall = Callable[[Principal, str], bool]  # (principal, tool name) -> is the tool served and allowed


@dataclass(frozen=True)
class Family:
    template: ResourceTemplate
    mirrors: str  # the tool whose availability and scope this resource family follows


FAMILIES = (
    Family(
        ResourceTemplate(
            uri_template="backtest://{backtest_id}",
            name="backtest",
            title="Stored backtest",
            description="One of your stored backtests: parameters, settings, metrics, data provenance, every "
            "trade (JSON), then its equity chart (PNG).",
            mime_type="application/json",
        ),
        "get_backtest",
    ),
    Family(
        ResourceTemplate(
            uri_template="backtest://{backtest_id}/equity.png",
            name="backtest-equity-chart",
            title="Backtest equity chart",
            description="The 800x350 equity-curve PNG of one of your stored backtests.",
            mime_type="image/png",
        ),
        "get_backtest",
    ),
    Family(
        ResourceTemplate(
            uri_template="strategy://{name}",
            name="strategy",
            title="Strategy documentation",
            description="A strategy's rule, parameters (type, bounds, default) and the backtest conventions.",
            mime_type="text/markdown",
        ),
        "get_strategy_info",
    ),
)


def not_found(uri: str, why: str = "") -> MCPError:
    return MCPError(code=RESOURCE_NOT_FOUND, message=f"Resource not found: {uri[:200]}{why}", data={"uri": uri[:200]})


def strategy_markdown(name: str) -> str:
    """The Markdown document of strategy ``name`` (which must exist)."""
    spec = STRATEGIES[name]
    rows = [
        f"| `{p.name}` | {p.type.__name__} | {p.default} | {_bound(p.minimum)} | {_bound(p.maximum)} "
        f"| {p.description} |"
        for p in spec.params
    ]
    example = ", ".join(f'"{p.name}": {json.dumps(p.default)}' for p in spec.params)
    return "\n".join(
        [
            f"# {spec.name}",
            "",
            spec.description,
            "",
            "## Parameters",
            "",
            "| name | type | default | minimum | maximum | meaning |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "## Conventions",
            "",
            CONVENTIONS,
            "",
            "## Run it",
            "",
            f'run_backtest(strategy="{spec.name}", symbol="SPY", params={{{example}}})',
            "",
        ]
    )


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


class ResourceCatalog:
    """What `resources/list`, `resources/templates/list` and `resources/read` answer, per principal."""

    def __init__(self, services: Services, may_call: MayCall) -> None:
        self.services = services
        self.may_call = may_call

    def templates(self, principal: Principal) -> list[ResourceTemplate]:
        return [f.template for f in FAMILIES if self.may_call(principal, f.mirrors)]

    async def listed(self, principal: Principal) -> list[Resource]:
        listed: list[Resource] = []
        if self.may_call(principal, "get_strategy_info"):
            listed += [
                Resource(
                    uri=f"strategy://{spec.name}",
                    name=f"strategy-{spec.name}",
                    title=f"Strategy {spec.name}",
                    description=spec.description,
                    mime_type="text/markdown",
                )
                for spec in STRATEGIES.values()
            ]
        if self.may_call(principal, "get_backtest"):
            for row in await self.services.backtests.recent(principal.subject, LISTED_BACKTESTS):
                total_return = row.metrics.get("total_return")
                summary = f"total return {total_return:.2%}" if isinstance(total_return, float) else "no return"
                listed.append(
                    Resource(
                        uri=f"backtest://{row.id}",
                        name=f"backtest-{row.id}",
                        title=f"{row.strategy} {row.symbol} {row.created_at:%Y-%m-%d %H:%M} UTC",
                        description=f"{summary}, {row.metrics.get('num_trades')} trades, "
                        f"{row.timeframe} bars from {row.data_source}",
                        mime_type="application/json",
                    )
                )
        return listed

    async def read(self, principal: Principal, uri: str) -> list[Contents]:
        backtest = BACKTEST_URI.match(uri)
        if backtest and self.may_call(principal, "get_backtest"):
            return await self._backtest(principal, backtest["id"], chart_only=bool(backtest["chart"]))
        strategy = STRATEGY_URI.match(uri)
        if strategy and strategy["name"] in STRATEGIES and self.may_call(principal, "get_strategy_info"):
            return [TextResourceContents(uri=uri, mime_type="text/markdown", text=strategy_markdown(strategy["name"]))]
        raise not_found(uri)

    async def _backtest(self, principal: Principal, backtest_id: str, *, chart_only: bool) -> list[Contents]:
        uri, chart_uri = f"backtest://{backtest_id}", f"backtest://{backtest_id}/equity.png"
        png = await self.services.backtests.chart(principal.subject, backtest_id)
        chart: list[Contents] = (
            [BlobResourceContents(uri=chart_uri, mime_type="image/png", blob=base64.b64encode(png).decode("ascii"))]
            if png is not None
            else []
        )
        if chart_only:
            if not chart:
                raise not_found(chart_uri, " (no such backtest of yours, or it was stored before charts were kept)")
            return chart
        stored = await self.services.backtests.get(principal.subject, backtest_id)
        if stored is None:
            raise not_found(uri, " (no such backtest of yours)")
        body = stored_backtest_out(stored).model_dump(mode="json") | {"equity_chart": chart_uri if chart else None}
        return [TextResourceContents(uri=uri, mime_type="application/json", text=json.dumps(body, indent=1)), *chart]
