"""``completion/complete``: suggestions for the arguments of our prompts and resource templates.

Candidates depend on the argument's name, wherever it appears:

- ``strategy``, ``name`` (of ``strategy://{name}``): the registered strategies; ``strategies`` (a
  comma-separated list) completes its last item.
- ``symbol``: the ``<SYMBOL>.csv|.parquet`` files in ``NT_DATA_DIR`` and the symbols of the caller's
  recent backtests.
- ``backtest_id``: the caller's recent backtest ids (only where get_backtest is allowed).
- ``timeframe``, ``objective``: their fixed choices.

Values start with what was typed (case-insensitive), at most 100, ``total`` counts every match.
A reference to a prompt or template this server does not have gets no values (not an error).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import get_args

from mcp_types import Completion, PromptReference, ResourceTemplateReference

from nt_mcp.adapters.data.synthetic import TIMEFRAMES
from nt_mcp.domain.strategies import STRATEGIES
from nt_mcp.infra.backtests import BacktestSummary
from nt_mcp.tools.optimization import Objective
from nt_mcp.tools.registry import Principal
from nt_mcp.tools.services import Services

MAX_VALUES = 100
RECENT_BACKTESTS = 200

MayCall = Callable[[Principal, str], bool]


class Completer:
    def __init__(self, services: Services, may_call: MayCall, prompt_names: Callable[[Principal], set[str]]) -> None:
        self.services = services
        self.may_call = may_call
        self.prompt_names = prompt_names

    async def complete(
        self,
        principal: Principal,
        ref: PromptReference | ResourceTemplateReference,
        argument: str,
        value: str,
        templates: Iterable[str],
    ) -> Completion:
        known = ref.name in self.prompt_names(principal) if isinstance(ref, PromptReference) else ref.uri in templates
        candidates = await self._candidates(principal, argument) if known else []
        head, _, typed = value.rpartition(",") if argument == "strategies" else ("", "", value)
        prefix = f"{head}," if head else ""
        matches = [prefix + c for c in candidates if c.lower().startswith(typed.strip().lower())]
        return Completion(values=matches[:MAX_VALUES], total=len(matches), has_more=len(matches) > MAX_VALUES)

    async def _candidates(self, principal: Principal, argument: str) -> list[str]:
        if argument in {"strategy", "strategies", "name"}:
            return sorted(STRATEGIES)
        if argument == "timeframe":
            return list(TIMEFRAMES)
        if argument == "objective":
            return list(get_args(Objective))
        if argument == "symbol":
            return sorted(set(self._file_symbols()) | {row.symbol for row in await self._recent(principal)})
        if argument == "backtest_id":
            return [row.id for row in await self._recent(principal)]
        return []

    async def _recent(self, principal: Principal) -> list[BacktestSummary]:
        if not self.may_call(principal, "get_backtest"):
            return []
        return await self.services.backtests.recent(principal.subject, RECENT_BACKTESTS)

    def _file_symbols(self) -> list[str]:
        directory = self.services.settings.data_dir
        if directory is None or not directory.is_dir():
            return []
        return [p.stem.upper() for p in directory.iterdir() if p.suffix.lower() in {".csv", ".parquet"}]
