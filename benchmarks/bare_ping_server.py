"""The reference for bench_guard.py: the mcp SDK's bare `MCPServer` with one trivial ``ping`` tool, over stdio."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer


def build() -> MCPServer:
    server: MCPServer = MCPServer("bare-sdk")

    @server.tool()
    def ping(echo: str = "") -> str:
        """Answer at once."""
        return echo

    return server


if __name__ == "__main__":
    build().run()
