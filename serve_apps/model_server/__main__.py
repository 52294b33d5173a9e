"""`python -m actorchestra.serve_apps.model_server --host 127.0.0.1 --port 8099`.

Prints one line, `actorchestra model server listening on http://HOST:PORT`, once the
socket is bound (port 0 picks a free one), so a parent process can wait for it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from types import FrameType

import uvicorn

from actorchestra.serve_apps.model_server.app import create_app
from actorchestra.serve_apps.model_server.config import ModelServerConfig
from actorchestra.serve_apps.model_server.runner import (
    READY_PREFIX,
    bind_socket,
    config_from_json,
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m actorchestra.serve_apps.model_server",
        description="The actorchestra offline OpenAI-compatible model server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099, help="0 picks a free port")
    parser.add_argument("--api-key", default=None, help="require this Bearer token")
    parser.add_argument("--latency-s", type=float, default=None, help="added per request")
    parser.add_argument("--token-latency-s", type=float, default=None, help="added per token")
    parser.add_argument("--models", default=None, help="comma-separated model ids to serve")
    parser.add_argument("--config-json", default=None, help="a full ModelServerConfig as JSON")
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground until SIGINT/SIGTERM."""
    args = _parse(argv)
    logging.basicConfig(level=args.log_level.upper())
    config = config_from_json(args.config_json) if args.config_json else ModelServerConfig()
    updates: dict[str, object] = {}
    if args.api_key is not None:
        updates["api_key"] = args.api_key
    if args.latency_s is not None:
        updates["latency_s"] = args.latency_s
    if args.token_latency_s is not None:
        updates["token_latency_s"] = args.token_latency_s
    if args.models:
        updates["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    config = ModelServerConfig.model_validate({**config.model_dump(), **updates})
    app = create_app(config)

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            app.state.faults.stopping = True  # release hung requests so shutdown is prompt
            super().handle_exit(sig, frame)

    sock = bind_socket(args.host, args.port)
    host, port = sock.getsockname()[:2]
    server = _Server(
        uvicorn.Config(
            app,
            log_level=args.log_level,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=2,
            access_log=False,
        )
    )
    print(f"{READY_PREFIX}http://{host}:{port}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
