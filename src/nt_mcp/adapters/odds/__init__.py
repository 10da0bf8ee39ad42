"""Sports odds sources: The Odds API v4 (`theoddsapi`) and saved answers of it on disk (`files`).

`build_odds_source` picks one from the settings: The Odds API when ``NT_ODDS_API_KEY`` is set, else the
files in ``NT_ODDS_DIR``, else `OddsNotConfiguredError` (``NOT_CONFIGURED``). There is no synthetic
odds source: odds are real prices or nothing.
"""

from __future__ import annotations

from nt_mcp.adapters.odds.files import FilesOdds
from nt_mcp.adapters.odds.model import OddsNotConfiguredError, OddsSource
from nt_mcp.adapters.odds.theoddsapi import TheOddsApi
from nt_mcp.config import Settings
from nt_mcp.infra.cache import Cache
from nt_mcp.infra.resilience import Upstreams


def build_odds_source(settings: Settings, upstreams: Upstreams, cache: Cache) -> OddsSource:
    """The configured odds source (see the module docstring)."""
    if settings.odds_api_key is not None and settings.odds_api_key.get_secret_value().strip():
        return TheOddsApi(
            settings.odds_api_key.get_secret_value().strip(),
            settings.odds_api_base_url,
            upstreams,
            cache,
            odds_ttl_s=settings.odds_ttl_s,
            sports_ttl_s=settings.odds_sports_ttl_s,
            timeout_s=settings.odds_timeout_s,
        )
    if settings.odds_dir is not None:
        return FilesOdds(settings.odds_dir, settings.odds_files_format)
    raise OddsNotConfiguredError()


__all__ = ["FilesOdds", "OddsNotConfiguredError", "OddsSource", "TheOddsApi", "build_odds_source"]
