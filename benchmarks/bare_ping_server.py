"""The reference for bench_guard.py: the mcp SDK's bare `MCPServer` with one trivial ``ping`` tool.

``python bare_ping_server.py`` serves stdio; ``python bare_ping_server.py --http PORT`` serves plain
streamable HTTP (no TLS, no auth) on 127.0.0.1:PORT/mcp with the SDK's defaults (sessions, SSE
answers) and uvicorn's access log off (log level WARNING), as nt-mcp runs without one.
"""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer


def build(log_level: str = "INFO") -> MCPServer:
    server: MCPServer = MCPServer("bare-sdk", log_level=log_level)  # type: ignore[arg-type]

    @server.tool()
    def ping(echo: str = "") -> str:
        """Answer at once."""
        return echo

    return server


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        build("WARNING").run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        build().run()
