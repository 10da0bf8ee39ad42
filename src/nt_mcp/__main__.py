"""`python -m nt_mcp` runs the same CLI as the `nt-mcp` console script."""

from nt_mcp.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
