"""build_server(services) -> MCPServer: the MCP server with the chosen toolsets registered behind the guard.

This is the one module that touches the SDK's MCPServer internals:

- `NtMCPServer.call_tool` turns the SDK's argument-validation failure (a ToolError caused by a
  pydantic ValidationError) into the same typed ``VALIDATION_ERROR`` result every other failure gets,
  a call to a tool that does not exist into ``NOT_FOUND``, and checks the caller's scope before the
  arguments (a tool the caller may not use answers ``FORBIDDEN`` whatever it was sent).
- `tools/list` shows each caller only the tools its scopes allow (least privilege: a ``read`` token
  never sees ``place_order``), with lean schemas (no ``title`` annotations pydantic adds to every
  property; descriptions stay).
- The SDK's resource, prompt and completion handlers are replaced by ours (`server.resources`,
  `server.prompts`, `server.completion`), which answer per principal; ``logging/setLevel`` is
  `server.client_logging`.
- Before the SDK validates a call, unknown argument names and unclean values
  (`tools.arguments.unclean_argument`: NUL, control characters, lone surrogates, NaN/Infinity, nesting
  deeper than 32 levels, anywhere in the arguments) are refused with ``VALIDATION_ERROR`` naming the
  argument. Input schemas say ``additionalProperties: false``, as the server behaves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    CallToolResult,
    CompleteRequestParams,
    CompleteResult,
    EmbeddedResource,
    GetPromptRequestParams,
    GetPromptResult,
    InputRequiredResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    PaginatedRequestParams,
    Prompt,
    PromptMessage,
    ReadResourceRequestParams,
    ReadResourceResult,
    SetLevelRequestParams,
    TextContent,
)
from mcp_types import Tool as MCPTool

from nt_mcp import __version__
from nt_mcp.errors import AuthenticationError, InternalError
from nt_mcp.errors import ValidationError as ToolValidationError
from nt_mcp.server import client_logging
from nt_mcp.server.completion import Completer
from nt_mcp.server.guard import Guard, describe_validation_error, new_correlation_id, scope_error
from nt_mcp.server.prompts import PROMPTS, WorkflowPrompt, checked_arguments
from nt_mcp.server.registry import all_tools, entry_point, toolset_names
from nt_mcp.server.resources import ResourceCatalog
from nt_mcp.server.stdio_pipes import pipe_stdio
from nt_mcp.tools.arguments import unclean_argument
from nt_mcp.tools.registry import Principal, ToolSpec
from nt_mcp.tools.services import Services

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "nt-mcp gives you real trading tools. Every number is computed by the server or read from an "
    "upstream service and says where it came from. Failed calls (isError) return the text "
    "{'error': {code, message, retryable, retry_after_s}}: read the code, fix the named argument "
    "or wait retry_after_s. "
    "Call server_status first to see the trading mode (paper or live) and what is configured. "
    "Stored backtests are also resources (backtest://{id}); prompts hold common workflows."
)


def lean_schema(node: Any) -> Any:
    """``node`` (a JSON Schema) without the ``title`` annotations pydantic puts on every schema;
    property names (including one called ``title``) and everything that constrains stay."""
    if isinstance(node, list):
        return [lean_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    lean: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in {"properties", "$defs", "definitions", "patternProperties"} and isinstance(value, dict):
            lean[key] = {name: lean_schema(schema) for name, schema in value.items()}
        else:
            lean[key] = lean_schema(value)
    return lean


# After the first tools/list, the deferred start (`NtMCPServer.start_when_used`) waits this long, so the
# reply is written before a background start competes with it for the interpreter.
AFTER_LISTING_S = 0.05


class NtMCPServer(MCPServer[Any]):
    def __init__(self, guard: Guard, specs: list[ToolSpec]) -> None:
        super().__init__(name="nt-mcp", version=__version__, instructions=INSTRUCTIONS)
        self.guard = guard
        self._when_used: Callable[[], Awaitable[None]] | None = None
        self._listed_once = False
        self._using: asyncio.Future[None] | None = None
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
        self._listing: dict[str, MCPTool] | None = None
        self.resources = ResourceCatalog(guard.services, self.may_call)
        self.completer = Completer(guard.services, self.may_call, self._prompt_names)
        sdk = self._lowlevel_server
        sdk.add_request_handler("logging/setLevel", SetLevelRequestParams, client_logging.set_level)
        sdk.add_request_handler("resources/list", PaginatedRequestParams, self._list_resources)
        sdk.add_request_handler("resources/templates/list", PaginatedRequestParams, self._list_templates)
        sdk.add_request_handler("resources/read", ReadResourceRequestParams, self._read_resource)
        sdk.add_request_handler("prompts/list", PaginatedRequestParams, self._list_prompts)
        sdk.add_request_handler("prompts/get", GetPromptRequestParams, self._get_prompt)
        sdk.add_request_handler("completion/complete", CompleteRequestParams, self._complete)

    # -- who may see what -----------------------------------------------------------------------
    def caller(self) -> Principal | None:
        """The principal of the request being served (None: no token where one is required)."""
        try:
            return self.guard.resolve_principal()
        except AuthenticationError:
            return None

    def _require_caller(self) -> Principal:
        principal = self.caller()
        if principal is None:
            raise MCPError(code=INVALID_REQUEST, message="A valid bearer token is required.")
        return principal

    def may_call(self, principal: Principal, tool: str) -> bool:
        """Is ``tool`` served here and allowed by ``principal``'s scopes?"""
        spec = self.specs.get(tool)
        return spec is not None and scope_error(spec, principal) is None

    def start_when_used(self, start: Callable[[], Awaitable[None]]) -> None:
        """Await ``start`` once the handshake is over: ``AFTER_LISTING_S`` after the first tools/list
        answered, or before the first tool call runs, whichever comes first. The kernel warm-up starts
        so: not beside the handshake, which it slowed, and running before a call that may need a kernel
        (small calls then run the kernels' Python twins instead of waiting for the compiler)."""
        self._when_used = start

    def _use(self) -> asyncio.Future[None] | None:
        """The one start (a task), begun on the first use; None when nothing is to start."""
        if self._using is None and self._when_used is not None:
            self._using = asyncio.ensure_future(self._when_used())
        return self._using

    async def run_stdio_async(self) -> None:
        """Serve over stdin/stdout: on event-loop pipes when both are pipes (`server.stdio_pipes`: no
        worker-thread hop per line), else the SDK's threaded files."""
        async with pipe_stdio() as pipes, stdio_server(*(pipes or (None, None))) as (read_stream, write_stream):
            sdk = self._lowlevel_server
            await sdk.run(read_stream, write_stream, sdk.create_initialization_options())

    # -- tools ------------------------------------------------------------------------------------
    async def list_tools(self) -> list[MCPTool]:
        if not self._listed_once:
            self._listed_once = True
            if self._when_used is not None:
                asyncio.get_running_loop().call_later(AFTER_LISTING_S, self._use)
        if self._listing is None:
            self._listing = {
                tool.name: tool.model_copy(
                    update={
                        "input_schema": lean_schema(tool.input_schema),
                        "output_schema": lean_schema(tool.output_schema),
                    }
                )
                for tool in await super().list_tools()
            }
        principal = self.caller()
        if principal is None:
            return []
        return [tool for name, tool in self._listing.items() if self.may_call(principal, name)]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        using = self._use()
        if using is not None and not using.done():
            await asyncio.shield(using)  # a cancelled call does not cancel the start
        spec = self.specs.get(name)
        if spec is None:
            return await self.guard.unknown_tool(name, arguments)
        principal = self.caller()
        forbidden = scope_error(spec, principal) if principal is not None else None
        if forbidden is not None:
            return await self.guard.refuse(spec, forbidden, arguments)
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
            correlation_id = new_correlation_id()  # an argument validator crashed: a bug, said as INTERNAL
            log.error("argument validation crashed", exc_info=error, extra={"correlation_id": correlation_id})
            return await self.guard.refuse(spec, InternalError(correlation_id), arguments)

    # -- resources --------------------------------------------------------------------------------
    async def _list_resources(self, _ctx: Any, _params: PaginatedRequestParams) -> ListResourcesResult:
        return ListResourcesResult(resources=await self.resources.listed(self._require_caller()))

    async def _list_templates(self, _ctx: Any, _params: PaginatedRequestParams) -> ListResourceTemplatesResult:
        return ListResourceTemplatesResult(resource_templates=self.resources.templates(self._require_caller()))

    async def _read_resource(self, _ctx: Any, params: ReadResourceRequestParams) -> ReadResourceResult:
        return ReadResourceResult(contents=await self.resources.read(self._require_caller(), str(params.uri)))

    # -- prompts and completion -------------------------------------------------------------------
    def _prompt_allowed(self, principal: Principal, prompt: WorkflowPrompt) -> bool:
        return all(self.may_call(principal, tool) for tool in prompt.tools)

    def _prompt_names(self, principal: Principal) -> set[str]:
        return {name for name, prompt in PROMPTS.items() if self._prompt_allowed(principal, prompt)}

    async def _list_prompts(self, _ctx: Any, _params: PaginatedRequestParams) -> ListPromptsResult:
        principal = self._require_caller()
        return ListPromptsResult(
            prompts=[
                Prompt(name=p.name, title=p.title, description=p.description, arguments=list(p.arguments))
                for p in PROMPTS.values()
                if self._prompt_allowed(principal, p)
            ]
        )

    async def _get_prompt(self, _ctx: Any, params: GetPromptRequestParams) -> GetPromptResult:
        principal = self._require_caller()
        prompt = PROMPTS.get(params.name)
        if prompt is None or not self._prompt_allowed(principal, prompt):
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Unknown prompt {params.name[:100]!r}; prompts/list names the prompts you may use.",
            )
        args = checked_arguments(prompt, params.arguments)
        messages: list[PromptMessage] = []
        if prompt.embeds is not None:
            for contents in await self.resources.read(principal, prompt.embeds(args)):
                embedded = EmbeddedResource(type="resource", resource=contents)
                messages.append(PromptMessage(role="user", content=embedded))
        messages.append(PromptMessage(role="user", content=TextContent(type="text", text=prompt.render(args))))
        return GetPromptResult(description=prompt.description, messages=messages)

    async def _complete(self, _ctx: Any, params: CompleteRequestParams) -> CompleteResult:
        principal = self._require_caller()
        templates = {t.uri_template for t in self.resources.templates(principal)}
        completion = await self.completer.complete(
            principal, params.ref, params.argument.name, params.argument.value, templates
        )
        return CompleteResult(completion=completion)


def build_server(services: Services, *, local_operator: bool = True) -> NtMCPServer:
    """The server over ``services`` with the toolsets ``NT_TOOLSETS`` names (all by default).

    With ``local_operator`` (stdio, in-process, HTTP with ``NT_HTTP_AUTH=none``) calls without a
    bearer token run as the local operator with ``NT_STDIO_SCOPES``; without it they are refused."""
    settings = services.settings
    local = Principal(subject="local-operator", scopes=settings.local_scopes, kind="local") if local_operator else None
    return NtMCPServer(Guard(services, local), all_tools(toolset_names(settings.toolsets)))
