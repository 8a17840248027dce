"""``winback serve``: the decision service of one exported policy, with uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from winback.errors import ConfigError
from winback.serve import create_app

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def serve(
    artifact_dir: Annotated[Path, typer.Argument(help="Export directory (winback export --out).")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    log_level: Annotated[str, typer.Option(help=f"uvicorn log level: {', '.join(LOG_LEVELS)}.")] = "info",
) -> None:
    """Serve POST /v1/decide, GET /v1/card and GET /healthz for the policy exported to ARTIFACT_DIR.

    One process, one onnxruntime thread; run several behind a load balancer to use more cores.
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port = {port} (allowed: 0 to 65535)")
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"--log-level = {log_level!r} (allowed: {', '.join(LOG_LEVELS)})")
    app = create_app(artifact_dir)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
