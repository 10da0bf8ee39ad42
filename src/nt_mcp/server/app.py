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
- `deferred_server` answers initialize and tools/list from a cached listing (`server.listing_cache`,
  over stdio after the first start) and registers the tools later (`attach_services`); the guard, the
  registry, resources, prompts, completion and the services are imported only then, so this module
  imports none of them at load.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

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
from nt_mcp.server.listing_cache import Listing
from nt_mcp.server.principal import resolve_principal
from nt_mcp.server.stdio_pipes import pipe_stdio
from nt_mcp.tools.arguments import unclean_argument
from nt_mcp.tools.registry import Principal, ToolSpec

if TYPE_CHECKING:  # imported when the tools are registered (`attach`): not needed to answer the handshake
    from nt_mcp.config import Settings
    from nt_mcp.server.completion import Completer
    from nt_mcp.server.guard import Guard
    from nt_mcp.server.prompts import WorkflowPrompt
    from nt_mcp.server.resources import ResourceCatalog
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
# reply is written and read before a background start competes with it for the interpreter (at 0.05 s, on
# a loaded 2-CPU machine, the start often began before the client had read the listing). A request that
# needs the start (a tool call, resources, prompts, completion) begins it at once, whatever this says.
AFTER_LISTING_S = 0.25


class NtMCPServer(MCPServer[Any]):
    """The server. ``NtMCPServer(guard, specs)`` registers the tools at once; ``NtMCPServer(None,
    listing=..., local_principal=...)`` (`deferred_server`) answers initialize and tools/list from a
    cached `Listing` and registers the tools when `attach` is called (by the start `start_when_used`
    sets): every other request (a tool call, resources, prompts, completion) waits for that start first,
    so no call fails or sees another tool list while the tools are being registered."""

    def __init__(
        self,
        guard: Guard | None,
        specs: Sequence[ToolSpec] = (),
        *,
        listing: Listing | None = None,
        local_principal: Principal | None = None,
    ) -> None:
        super().__init__(name="nt-mcp", version=__version__, instructions=INSTRUCTIONS)
        self.guard: Guard | None = None
        self.local_principal = guard.local_principal if guard is not None else local_principal
        self._when_used: Callable[[], Awaitable[None]] | None = None
        self._listed_once = False
        self._using: asyncio.Future[None] | None = None
        self.specs: dict[str, ToolSpec] = {}
        self._scopes: dict[str, str] = dict(listing.scopes) if listing is not None else {}
        self._listing: dict[str, MCPTool] | None = (
            {tool.name: tool for tool in listing.tools} if listing is not None else None
        )
        self.cached_listing = listing is not None  # tools/list answers from a cache, not from this build
        sdk = self._lowlevel_server
        sdk.add_request_handler("logging/setLevel", SetLevelRequestParams, client_logging.set_level)
        sdk.add_request_handler("resources/list", PaginatedRequestParams, self._list_resources)
        sdk.add_request_handler("resources/templates/list", PaginatedRequestParams, self._list_templates)
        sdk.add_request_handler("resources/read", ReadResourceRequestParams, self._read_resource)
        sdk.add_request_handler("prompts/list", PaginatedRequestParams, self._list_prompts)
        sdk.add_request_handler("prompts/get", GetPromptRequestParams, self._get_prompt)
        sdk.add_request_handler("completion/complete", CompleteRequestParams, self._complete)
        if guard is not None:
            self.attach(guard, specs)

    def attach(self, guard: Guard, specs: Sequence[ToolSpec]) -> None:
        """Register ``specs`` behind ``guard`` (their schemas are built here) and the resources and
        completion over its services."""
        from nt_mcp.server.completion import Completer
        from nt_mcp.server.registry import entry_point
        from nt_mcp.server.resources import ResourceCatalog

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
        self.specs = {spec.name: spec for spec in specs}
        self._scopes = {spec.name: spec.scope for spec in specs}
        self.resources: ResourceCatalog = ResourceCatalog(guard.services, self.may_call)
        self.completer: Completer = Completer(guard.services, self.may_call, self._prompt_names)
        self.guard = guard

    async def built_listing(self) -> Listing:
        """The listing of the registered tools, built from them (what tools/list shows a caller allowed
        every tool): lean schemas, registry order."""
        tools = tuple(
            tool.model_copy(
                update={
                    "input_schema": lean_schema(tool.input_schema),
                    "output_schema": lean_schema(tool.output_schema),
                }
            )
            for tool in await super().list_tools()
        )
        return Listing(tools, {tool.name: self._scopes[tool.name] for tool in tools})

    def replace_listing(self, listing: Listing) -> None:
        """Answer tools/list with ``listing`` from now on (a cached listing found to differ from the
        registered tools: the registered tools win)."""
        self._listing = {tool.name: tool for tool in listing.tools}

    # -- who may see what -----------------------------------------------------------------------
    def caller(self) -> Principal | None:
        """The principal of the request being served (None: no token where one is required)."""
        try:
            return resolve_principal(self.local_principal)
        except AuthenticationError:
            return None

    def _require_caller(self) -> Principal:
        principal = self.caller()
        if principal is None:
            raise MCPError(code=INVALID_REQUEST, message="A valid bearer token is required.")
        return principal

    def may_call(self, principal: Principal, tool: str) -> bool:
        """Is ``tool`` served here and allowed by ``principal``'s scopes? (The guard's `scope_error`
        rule: the tool's scope is one of the principal's.)"""
        scope = self._scopes.get(tool)
        return scope is not None and scope in principal.scopes

    def start_when_used(self, start: Callable[[], Awaitable[None]]) -> None:
        """Await ``start`` once the handshake is over: ``AFTER_LISTING_S`` after the first tools/list
        answered, or before the first other request (a tool call, resources, prompts, completion) runs,
        whichever comes first. The kernel warm-up starts so: not beside the handshake, which it slowed,
        and running before a call that may need a kernel (small calls then run the kernels' Python twins
        instead of waiting for the compiler); a deferred server registers its tools so."""
        self._when_used = start

    @property
    def starting(self) -> asyncio.Future[None] | None:
        """The start, once begun (None before)."""
        return self._using

    def begin(self) -> asyncio.Future[None] | None:
        """The one start (a task), begun on the first use; None when nothing is to start."""
        if self._using is None and self._when_used is not None:
            self._using = asyncio.ensure_future(self._when_used())
        return self._using

    async def _started(self, *, whole: bool = False) -> Guard:
        """The guard, once the tools are registered; with ``whole`` (a tool call), once the start has
        finished. Begins the start if it has not begun; a start that failed raises here."""
        if self.guard is not None and not whole:
            return self.guard
        using = self.begin()
        if using is not None and not using.done():
            await asyncio.shield(using)  # a cancelled request does not cancel the start
        if self.guard is None:
            if using is not None and using.done() and using.exception() is not None:
                raise RuntimeError("the server's start failed") from using.exception()
            raise RuntimeError("the server's tools are not registered")
        return self.guard

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
                asyncio.get_running_loop().call_later(AFTER_LISTING_S, self.begin)
        if self._listing is None:
            await self._started()
            self.replace_listing(await self.built_listing())
        assert self._listing is not None
        principal = self.caller()
        if principal is None:
            return []
        return [tool for name, tool in self._listing.items() if self.may_call(principal, name)]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        from nt_mcp.server.guard import describe_validation_error, new_correlation_id, scope_error

        guard = await self._started(whole=True)
        spec = self.specs.get(name)
        if spec is None:
            return await guard.unknown_tool(name, arguments)
        principal = self.caller()
        forbidden = scope_error(spec, principal) if principal is not None else None
        if forbidden is not None:
            return await guard.refuse(spec, forbidden, arguments)
        unclean = unclean_argument(arguments)
        if unclean is not None:
            path, reason = unclean
            return await guard.refuse(spec, ToolValidationError(f"{path}: {reason}", argument=path), arguments)
        unknown = sorted(set(arguments) - set(spec.argument_names))
        if unknown:
            return await guard.refuse(
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
                return await guard.refuse(spec, describe_validation_error(error.__cause__), arguments)
            correlation_id = new_correlation_id()  # an argument validator crashed: a bug, said as INTERNAL
            log.error("argument validation crashed", exc_info=error, extra={"correlation_id": correlation_id})
            return await guard.refuse(spec, InternalError(correlation_id), arguments)

    # -- resources --------------------------------------------------------------------------------
    async def _list_resources(self, _ctx: Any, _params: PaginatedRequestParams) -> ListResourcesResult:
        await self._started()
        return ListResourcesResult(resources=await self.resources.listed(self._require_caller()))

    async def _list_templates(self, _ctx: Any, _params: PaginatedRequestParams) -> ListResourceTemplatesResult:
        await self._started()
        return ListResourceTemplatesResult(resource_templates=self.resources.templates(self._require_caller()))

    async def _read_resource(self, _ctx: Any, params: ReadResourceRequestParams) -> ReadResourceResult:
        await self._started()
        return ReadResourceResult(contents=await self.resources.read(self._require_caller(), str(params.uri)))

    # -- prompts and completion -------------------------------------------------------------------
    def _prompt_allowed(self, principal: Principal, prompt: WorkflowPrompt) -> bool:
        return all(self.may_call(principal, tool) for tool in prompt.tools)

    def _prompt_names(self, principal: Principal) -> set[str]:
        from nt_mcp.server.prompts import PROMPTS

        return {name for name, prompt in PROMPTS.items() if self._prompt_allowed(principal, prompt)}

    async def _list_prompts(self, _ctx: Any, _params: PaginatedRequestParams) -> ListPromptsResult:
        from nt_mcp.server.prompts import PROMPTS

        await self._started()
        principal = self._require_caller()
        return ListPromptsResult(
            prompts=[
                Prompt(name=p.name, title=p.title, description=p.description, arguments=list(p.arguments))
                for p in PROMPTS.values()
                if self._prompt_allowed(principal, p)
            ]
        )

    async def _get_prompt(self, _ctx: Any, params: GetPromptRequestParams) -> GetPromptResult:
        from nt_mcp.server.prompts import PROMPTS, checked_arguments

        await self._started()
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
        await self._started()
        principal = self._require_caller()
        templates = {t.uri_template for t in self.resources.templates(principal)}
        completion = await self.completer.complete(
            principal, params.ref, params.argument.name, params.argument.value, templates
        )
        return CompleteResult(completion=completion)


def local_operator_principal(settings: Settings) -> Principal:
    """The principal of calls without a bearer token where the local operator is allowed:
    ``NT_STDIO_SCOPES``."""
    return Principal(subject="local-operator", scopes=settings.local_scopes, kind="local")


def build_server(services: Services, *, local_operator: bool = True) -> NtMCPServer:
    """The server over ``services`` with the toolsets ``NT_TOOLSETS`` names (all by default).

    With ``local_operator`` (stdio, in-process, HTTP with ``NT_HTTP_AUTH=none``) calls without a
    bearer token run as the local operator with ``NT_STDIO_SCOPES``; without it they are refused."""
    local = local_operator_principal(services.settings) if local_operator else None
    server = NtMCPServer(None, local_principal=local)
    attach_services(server, services)
    return server


def deferred_server(listing: Listing, *, local_principal: Principal | None) -> NtMCPServer:
    """A server that answers initialize and tools/list from ``listing`` (a cached full build, see
    `server.listing_cache`); `attach_services` registers its tools later."""
    return NtMCPServer(None, listing=listing, local_principal=local_principal)


def attach_services(server: NtMCPServer, services: Services) -> None:
    """Register on ``server`` the tools of the toolsets ``NT_TOOLSETS`` names, behind a guard over
    ``services``."""
    from nt_mcp.server.guard import Guard
    from nt_mcp.server.registry import all_tools, toolset_names

    server.attach(Guard(services, server.local_principal), all_tools(toolset_names(services.settings.toolsets)))
