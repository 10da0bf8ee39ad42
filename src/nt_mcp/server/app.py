"""build_server(services) -> MCPServer: the MCP server with every toolset registered behind the guard.

This is the one module that touches the SDK's MCPServer internals: `NtMCPServer.call_tool`
turns the SDK's argument-validation failure (a ToolError caused by a pydantic ValidationError)
into the same typed ``VALIDATION_ERROR`` result every other failure gets, and a call to a tool
that does not exist into ``NOT_FOUND`` (instead of the SDK's bare text). Before the SDK validates
a call, unknown argument names and unclean values (`tools.arguments.unclean_argument`: NUL, control
characters, lone surrogates, NaN/Infinity, nesting deeper than 32 levels, anywhere in the arguments)
are refused with ``VALIDATION_ERROR`` naming the argument. Input schemas say
``additionalProperties: false``, as the server behaves.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pydantic
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult

from nt_mcp import __version__
from nt_mcp.errors import InternalError
from nt_mcp.errors import ValidationError as ToolValidationError
from nt_mcp.server.guard import Guard, describe_validation_error
from nt_mcp.server.registry import all_tools, entry_point
from nt_mcp.tools.arguments import unclean_argument
from nt_mcp.tools.registry import Principal, ToolSpec
from nt_mcp.tools.services import Services

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "nt-mcp gives you real trading tools. Every number is computed by the server or read from an "
    "upstream service and says where it came from. Failed calls (isError) return the text "
    "{'error': {code, message, retryable, retry_after_s}}: read the code, fix the named argument "
    "or wait retry_after_s. "
    "Call server_status first to see the trading mode (paper or live) and what is configured."
)


class NtMCPServer(MCPServer[Any]):
    def __init__(self, guard: Guard, specs: list[ToolSpec]) -> None:
        super().__init__(name="nt-mcp", version=__version__, instructions=INSTRUCTIONS)
        self.guard = guard
        self.specs = {spec.name: spec for spec in specs}
        for spec in specs:
            self.add_tool(
                entry_point(spec, guard),
                name=spec.name,
                title=spec.annotations.title,
                description=spec.description,
                annotations=spec.annotations,
            )
            registered = self._tool_manager.get_tool(spec.name)
            if registered is not None:  # unknown argument names are refused: say so in the schema
                registered.parameters["additionalProperties"] = False

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        spec = self.specs.get(name)
        if spec is None:
            return await self.guard.unknown_tool(name, arguments)
        unclean = unclean_argument(arguments)
        if unclean is not None:
            path, reason = unclean
            return await self.guard.refuse(spec, ToolValidationError(f"{path}: {reason}", argument=path), arguments)
        unknown = sorted(set(arguments) - set(spec.argument_names))
        if unknown:
            return await self.guard.refuse(
                spec,
                ToolValidationError(
                    f"Unknown argument(s) {', '.join(unknown)}; '{name}' takes "
                    f"{', '.join(spec.argument_names) or 'no arguments'}.",
                    argument=unknown[0],
                ),
                arguments,
            )
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as error:
            if isinstance(error.__cause__, pydantic.ValidationError):
                return await self.guard.refuse(spec, describe_validation_error(error.__cause__), arguments)
            correlation_id = uuid.uuid4().hex[:16]  # an argument validator crashed: a bug, said as INTERNAL
            log.error("argument validation crashed", exc_info=error, extra={"correlation_id": correlation_id})
            return await self.guard.refuse(spec, InternalError(correlation_id), arguments)


def build_server(services: Services, *, local_operator: bool = True) -> NtMCPServer:
    """The server over ``services``. With ``local_operator`` (stdio, in-process) calls without a
    bearer token run as the local operator with ``NT_STDIO_SCOPES``; without it they are refused."""
    local = (
        Principal(subject="local-operator", scopes=services.settings.local_scopes, kind="local")
        if local_operator
        else None
    )
    return NtMCPServer(Guard(services, local), all_tools())
