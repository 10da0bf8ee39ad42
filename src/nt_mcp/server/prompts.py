"""MCP prompts: the common workflows, written out as instructions an agent follows with our tools.

Each prompt names the tools it uses; it is listed (and served) only when every one of them is served
(``NT_TOOLSETS``) and allowed by the caller's scopes, so a read-only token is never offered a
trading workflow. Arguments are strings (as MCP prompts have them) and are checked: an unknown
strategy or a malformed symbol is an ``INVALID_PARAMS`` error naming the argument.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import get_args

from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, PromptArgument

from nt_mcp.adapters.data.synthetic import TIMEFRAMES
from nt_mcp.domain.strategies import STRATEGIES
from nt_mcp.tools.optimization import Objective

_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][0-9:.+Z-]{1,20})?$")

SYNTHETIC_NOTE = (
    'Check each result\'s data.source: "synthetic" means generated prices, not real ones; say so plainly. '
    "A backtest describes the past under stated conventions; it is not a forecast."
)


@dataclass(frozen=True)
class WorkflowPrompt:
    name: str
    title: str
    description: str
    arguments: tuple[PromptArgument, ...]
    tools: tuple[str, ...]  # every tool the workflow calls
    render: Callable[[Mapping[str, str]], str]
    embeds: Callable[[Mapping[str, str]], str] | None = None  # a resource URI to embed before the text


def _arg(name: str, description: str, required: bool = False) -> PromptArgument:
    return PromptArgument(name=name, description=description, required=required)


def _range_hint(args: Mapping[str, str]) -> str:
    parts = [f'{key}="{args[key]}"' for key in ("start", "end") if args.get(key)]
    return (", " + ", ".join(parts)) if parts else ""


def _compare(args: Mapping[str, str]) -> str:
    chosen = [s.strip() for s in args.get("strategies", "").split(",") if s.strip()]
    which = ", ".join(chosen) if chosen else "every strategy list_strategies returns"
    timeframe = args.get("timeframe") or "1Day"
    return (
        f"Backtest and compare strategies on {args['symbol']}.\n"
        "1. Call list_strategies to see each strategy's rule and default parameters.\n"
        f'2. For {which}: call run_backtest with strategy=<name>, symbol="{args["symbol"]}", '
        f'timeframe="{timeframe}"{_range_hint(args)} and the default parameters. Keep every other '
        "setting identical across runs so they compare.\n"
        "3. Make one table: strategy, total_return, cagr, sharpe, max_drawdown, num_trades, win_rate, and "
        "buy_and_hold_return.\n"
        "4. Say which did best on risk-adjusted terms (Sharpe, drawdown), not only on return, and whether "
        "any beat buy & hold over the same bars.\n" + SYNTHETIC_NOTE
    )


def _optimize(args: Mapping[str, str]) -> str:
    objective = args.get("objective") or "sharpe"
    return (
        f"Tune {args['strategy']} on {args['symbol']} without fooling yourself.\n"
        f'1. Call get_strategy_info strategy="{args["strategy"]}" for its parameters and bounds.\n'
        f'2. Call optimize_strategy with strategy="{args["strategy"]}", symbol="{args["symbol"]}", '
        f'objective="{objective}", train_fraction=0.7{_range_hint(args)} and a modest grid around the '
        "defaults (at most about 100 combinations).\n"
        "3. Compare in_sample and out_of_sample for the top sets. Prefer a set that holds up out of sample "
        "over the best in-sample one; a large drop means the search fitted noise.\n"
        "4. Run run_backtest with the chosen parameters over the whole range and report its metrics next to "
        "the defaults' metrics.\n" + SYNTHETIC_NOTE
    )


def _review(args: Mapping[str, str]) -> str:
    return (
        f"Review backtest {args['backtest_id']} (attached above as JSON, with its equity chart): the strategy "
        "and parameters, the data it ran on, return versus buy & hold, Sharpe and max drawdown, the number "
        "and quality of trades (win rate, profit factor, best and worst), and how costs (commission, "
        "slippage) were set. Point out anything that makes the result fragile: few trades, one trade "
        "carrying the result, long drawdowns, zero costs. " + SYNTHETIC_NOTE
    )


def _paper_trade(args: Mapping[str, str]) -> str:
    symbols = ", ".join(s.strip().upper() for s in args["symbols"].split(",") if s.strip())
    return (
        f"Plan (and only on my confirmation, place) {args['strategy']} orders for {symbols}.\n"
        "1. Call server_status and say whether trading is paper or LIVE. If live, stop and ask me first.\n"
        "2. Call get_account for equity and buying power.\n"
        f'3. Call execute_strategy with strategy="{args["strategy"]}", symbols={symbols.split(", ")} and '
        "dry_run=true. Show me the signals, target positions and planned orders with the risk checks.\n"
        "4. Only if I confirm, call execute_strategy again with the same arguments, dry_run=false and a "
        "fresh idempotency_key (reuse that key if you must retry: it never places an order twice)."
    )


PROMPTS: dict[str, WorkflowPrompt] = {
    p.name: p
    for p in (
        WorkflowPrompt(
            name="compare_strategies",
            title="Backtest and compare strategies on a symbol",
            description="Run every (or the listed) strategy on one symbol with the same settings and compare "
            "risk-adjusted results against buy & hold.",
            arguments=(
                _arg("symbol", "Ticker, e.g. SPY", required=True),
                _arg("strategies", "Comma-separated strategy names; empty: all"),
                _arg("timeframe", "1Min, 5Min, 15Min, 1Hour or 1Day (default)"),
                _arg("start", "First day, YYYY-MM-DD (default: a year before end)"),
                _arg("end", "Last day, YYYY-MM-DD (default: now)"),
            ),
            tools=("list_strategies", "run_backtest"),
            render=_compare,
        ),
        WorkflowPrompt(
            name="optimize_and_validate",
            title="Optimise a strategy and check it out of sample",
            description="Grid-search a strategy's parameters on the earlier bars, check the winners on the "
            "later bars, then backtest the chosen set.",
            arguments=(
                _arg("strategy", "Strategy name, e.g. sma_crossover", required=True),
                _arg("symbol", "Ticker, e.g. SPY", required=True),
                _arg("objective", "Metric to maximise (default sharpe)"),
                _arg("start", "First day, YYYY-MM-DD"),
                _arg("end", "Last day, YYYY-MM-DD"),
            ),
            tools=("get_strategy_info", "optimize_strategy", "run_backtest"),
            render=_optimize,
        ),
        WorkflowPrompt(
            name="review_backtest",
            title="Review a stored backtest",
            description="Attach one of your stored backtests (JSON and equity chart) and ask for a critical review.",
            arguments=(_arg("backtest_id", "An id from run_backtest or list_backtests", required=True),),
            tools=("get_backtest",),
            render=_review,
            embeds=lambda args: f"backtest://{args['backtest_id']}",
        ),
        WorkflowPrompt(
            name="paper_trade_strategy",
            title="Plan a strategy's orders, place them on confirmation",
            description="Dry-run execute_strategy for some symbols, show the plan, and send the orders only "
            "after you confirm.",
            arguments=(
                _arg("strategy", "Strategy name, e.g. momentum", required=True),
                _arg("symbols", "Comma-separated tickers, e.g. SPY,QQQ", required=True),
            ),
            tools=("server_status", "get_account", "execute_strategy"),
            render=_paper_trade,
        ),
    )
}


def checked_arguments(prompt: WorkflowPrompt, given: Mapping[str, str] | None) -> dict[str, str]:
    """``given`` checked against ``prompt``'s arguments; raises INVALID_PARAMS naming the argument."""
    args = {k: v.strip() for k, v in (given or {}).items() if isinstance(v, str)}
    known = {a.name for a in prompt.arguments}
    for name in sorted(set(args) - known):
        raise _invalid(name, f"is not an argument of {prompt.name}; it takes {', '.join(sorted(known))}")
    for a in prompt.arguments:
        if a.required and not args.get(a.name):
            raise _invalid(a.name, "is required")
    for name, value in args.items():
        if value:
            _check(name, value)
    return args


def _check(name: str, value: str) -> None:
    if name == "strategy" and value not in STRATEGIES:
        raise _invalid(name, f"unknown strategy {value[:64]!r}; known: {', '.join(sorted(STRATEGIES))}")
    if name == "strategies":
        for item in (s.strip() for s in value.split(",")):
            if item and item not in STRATEGIES:
                raise _invalid(name, f"unknown strategy {item[:64]!r}; known: {', '.join(sorted(STRATEGIES))}")
    if name == "symbol" and not _SYMBOL.match(value):
        raise _invalid(name, "must be a ticker like SPY (letters, digits, . _ -; at most 32)")
    if name == "symbols" and not all(_SYMBOL.match(s.strip()) for s in value.split(",") if s.strip()):
        raise _invalid(name, "must be comma-separated tickers like SPY,QQQ")
    if name == "timeframe" and value not in TIMEFRAMES:
        raise _invalid(name, f"must be one of {', '.join(TIMEFRAMES)}")
    if name == "objective" and value not in get_args(Objective):
        raise _invalid(name, f"must be one of {', '.join(get_args(Objective))}")
    if name == "backtest_id" and not _ID.match(value):
        raise _invalid(name, "is not a backtest id")
    if name in {"start", "end"} and not _DATE.match(value):
        raise _invalid(name, "must be a date like 2024-01-31")


def _invalid(argument: str, why: str) -> MCPError:
    return MCPError(code=INVALID_PARAMS, message=f"{argument} {why}", data={"argument": argument})
