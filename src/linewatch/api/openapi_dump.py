"""Write the service's OpenAPI schema to a file, without a running server: ``python -m linewatch.api.openapi_dump
web/openapi.json`` (the dashboard generates its API types from it)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path


def schema() -> dict:
    from linewatch.api.app import create_app
    from linewatch.config import Settings

    with tempfile.TemporaryDirectory(prefix="linewatch-openapi-") as tmp:
        # embedded parts only: never the database, blob store or queue the environment may name
        app = create_app(Settings(data_dir=Path(tmp), database_url=None, blob_url=None, queue_url=None))
        doc = app.openapi()
        app.state.ctx.engine.dispose()
    return doc


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else Path("web/openapi.json")
    out.write_text(json.dumps(schema(), indent=2, sort_keys=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
