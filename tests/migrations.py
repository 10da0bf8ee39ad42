"""The newest Alembic revision, so tests need no edit when a migration is added."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from nt_mcp.infra.migrate import MIGRATIONS_DIR


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head
