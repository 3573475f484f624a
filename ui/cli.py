"""`python run.py ui [--host 127.0.0.1] [--port 8675] [--training-folder DIR ...] [--dataset-folder DIR ...]`."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from .folders import Folders
from .security import TOKEN_ENV, is_loopback, new_token


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py ui",
        description="A local web app over your runs: start, watch, stop, resume and compare them, and edit captions.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs the access token)")
    parser.add_argument("--port", type=int, default=8675, help="port (default 8675; 0 picks a free one)")
    parser.add_argument(
        "--training-folder", dest="training_folders", action="append", type=Path, metavar="DIR",
        help="a folder of runs (training_folder in the configs; repeatable; default: output)",
    )
    parser.add_argument(
        "--dataset-folder", dest="dataset_folders", action="append", type=Path, metavar="DIR",
        help="a folder the dataset pages may browse and edit captions in (repeatable; default: data)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    from .app import create_app

    args = build_parser().parse_args(argv)
    folders = Folders(args.training_folders or [Path("output")], args.dataset_folders or [Path("data")], Path.cwd())
    for folder in folders.training:
        if folder.exists() and not folder.is_dir():
            print(f"error: --training-folder {folder} is a file, not a folder", file=sys.stderr)
            return 2
    loopback = is_loopback(args.host)
    token = None if loopback else (os.environ.get(TOKEN_ENV) or new_token())
    listener = _listen(args.host, args.port)
    port = listener.getsockname()[1]
    shown_host = args.host if loopback or args.host not in ("0.0.0.0", "::") else socket.gethostname()
    url = f"http://{'[' + shown_host + ']' if ':' in shown_host else shown_host}:{port}/"
    if token is None:
        print(f"ltx2-trace UI on {url}", flush=True)
    elif os.environ.get(TOKEN_ENV):
        print(f"ltx2-trace UI on {url} (token from {TOKEN_ENV}: open {url}?token=<it>)", flush=True)
    else:
        print(f"ltx2-trace UI on {url}?token={token}\n  (bound to {args.host}: requests need this token; set {TOKEN_ENV} to choose it)", flush=True)
    print("  runs in: " + ", ".join(str(path) for path in folders.training), flush=True)
    app = create_app(folders, token, loopback_only=loopback)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    server.run(sockets=[listener])
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """Bind before starting the server, so the port (also a free one, with --port 0) is known to print."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(128)
    return listener
