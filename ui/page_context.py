"""What every route needs: the UI object (folders, launches, queue, CSRF token, templates) and the helpers
that read a request. The pages import this, and app.py imports the pages, so neither imports the other back."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from .folders import Folders
from .job_queue import JobQueue
from .jobs import Launches
from .security import check_csrf

MAX_UPLOAD_BYTES = 256 * 1024


@dataclass
class UI:
    """What every route needs: the folders, the launches database, the queue and the page machinery."""

    folders: Folders
    launches: Launches
    queue: JobQueue
    csrf: str
    templates: Jinja2Templates

    def page(self, request: Request, template: str, status_code: int = 200, **context) -> Response:
        context.update(csrf=self.csrf, folders=self.folders, said=request.query_params.get("said"))
        return self.templates.TemplateResponse(request, template, context, status_code=status_code)


def ui_of(request: Request) -> UI:
    return request.app.state.ui


async def posted_form(request: Request) -> FormData:
    """A change's form, size-limited, after its CSRF token is checked."""
    form = await request.form(max_files=1, max_fields=100, max_part_size=MAX_UPLOAD_BYTES)
    check_csrf(request, form, ui_of(request).csrf)
    return form


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")
