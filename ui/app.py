"""The Starlette app: the pages, their JSON twins, the queue loop, and how refusals are answered.

`create_app` wires what `python run.py ui` serves; the routes live in pages_runs.py, pages_jobs.py
and pages_datasets.py, and what each route reads of the app in page_context.py. Every page's data is also at a stable JSON URL under /api/ (the same
functions build both), so the tests, a script and the page read the same thing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from . import pages_datasets, pages_jobs, pages_runs
from .datasets import CaptionRefused
from .folders import Folders, NotFound, PathRefused
from .job_queue import ActionRefused, JobQueue
from .jobs import Launches
from .page_context import UI, ui_of, wants_json
from .security import Forbidden, Guard

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("ltx2_trace.ui")


def create_app(folders: Folders, token: str | None = None, loopback_only: bool = True, tick_seconds: float = 1.0) -> Starlette:
    folders.state.mkdir(parents=True, exist_ok=True)
    launches = Launches(folders.state / "jobs.sqlite")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters.update(size=human_size, seconds=human_seconds, when=short_time, number=short_number)
    ui = UI(folders, launches, JobQueue(folders, launches), secrets.token_urlsafe(32), templates)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        requeued = ui.queue.requeue_unstarted()
        if requeued:
            logger.info("queued again %d job(s) that never started", requeued)
        loop = asyncio.create_task(_queue_loop(ui.queue, tick_seconds))
        try:
            yield
        finally:
            loop.cancel()
            launches.close()

    routes = [
        *pages_runs.routes(),
        *pages_jobs.routes(),
        *pages_datasets.routes(),
        Route("/api/session", lambda request: JSONResponse({"csrf": ui_of(request).csrf})),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, token=token, loopback_only=loopback_only)],
        exception_handlers={
            PathRefused: _refused(403),
            Forbidden: _refused(403),
            NotFound: _refused(404),
            ActionRefused: _refused(409),
            CaptionRefused: _refused(400),
        },
        lifespan=lifespan,
    )
    app.state.ui = ui
    return app


async def _queue_loop(queue: JobQueue, seconds: float) -> None:
    while True:
        try:
            await anyio.to_thread.run_sync(queue.tick)
        except Exception:  # a broken tick must not end the queue: log it with its traceback and go on
            logger.exception("queue tick failed")
        await asyncio.sleep(seconds)


def _refused(status: int):
    async def handler(request: Request, error: Exception) -> Response:
        if wants_json(request):
            return JSONResponse({"error": str(error)}, status_code=status)
        return ui_of(request).page(request, "message.html", status_code=status, title=f"{status}", message=str(error))

    return handler


# -- template filters ---------------------------------------------------------------------------
def human_size(size: int | None) -> str:
    if size is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else (f"{minutes}m {secs:02d}s" if minutes else f"{secs}s")


def short_time(iso: str | None) -> str:
    """An ISO-8601 time as local 'YYYY-MM-DD HH:MM:SS'."""
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def short_number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4g}"
