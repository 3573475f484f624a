"""The dataset pages: the served dataset folders, one folder's clips, their media, and caption edits.

    GET  /datasets                              the dataset folders          GET /api/datasets
    GET  /datasets/{i}?path=REL&<settings>      a folder's clips             GET /api/datasets/{i}?path=...
    GET  /datasets/{i}/files/{path}             a clip or image
    POST /datasets/{i}/caption                  path, clip, caption_ext, caption
"""

from __future__ import annotations

from urllib.parse import urlencode

import anyio
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from toolkit.data.files import is_media

from .page_context import posted_form, ui_of, wants_json
from .datasets import browse, dataset_settings, save_caption
from .folders import NotFound, inside


def routes() -> list[Route]:
    return [
        Route("/datasets", datasets_page),
        Route("/api/datasets", datasets_json),
        Route("/datasets/{index:int}", dataset_page),
        Route("/api/datasets/{index:int}", dataset_json),
        Route("/datasets/{index:int}/files/{path:path}", dataset_file),
        Route("/datasets/{index:int}/caption", caption_post, methods=["POST"]),
    ]


def datasets_page(request: Request) -> Response:
    ui = ui_of(request)
    return ui.page(request, "datasets.html", roots=list(enumerate(ui.folders.datasets)))


def datasets_json(request: Request) -> Response:
    ui = ui_of(request)
    return JSONResponse({"datasets": [{"index": i, "folder": str(path), "url": f"/datasets/{i}"} for i, path in enumerate(ui.folders.datasets)]})


def _view(request: Request):
    ui = ui_of(request)
    settings = dataset_settings(dict(request.query_params))
    return browse(ui.folders, request.path_params["index"], request.query_params.get("path", ""), settings)


def dataset_page(request: Request) -> Response:
    view = _view(request)
    query = urlencode({"path": view.relative, **view.settings})
    return ui_of(request).page(request, "dataset.html", view=view, query=query)


def dataset_json(request: Request) -> Response:
    return JSONResponse(_view(request).as_json())


def dataset_file(request: Request) -> Response:
    ui = ui_of(request)
    path = inside(ui.folders.dataset_folder(request.path_params["index"]), request.path_params["path"])
    if not path.is_file() or not is_media(path):
        raise NotFound(f"{request.path_params['path']!r} is not a clip or image")
    return FileResponse(path)


async def caption_post(request: Request) -> Response:
    ui = ui_of(request)
    form = await posted_form(request)
    index = request.path_params["index"]
    relative, clip = str(form.get("path", "")), str(form.get("clip", ""))
    caption_ext = str(form.get("caption_ext", "txt"))
    written = await anyio.to_thread.run_sync(save_caption, ui.folders, index, relative, clip, caption_ext, str(form.get("caption", "")))
    if wants_json(request):
        return JSONResponse({"saved": written.name})
    back = urlencode({"path": relative, "caption_ext": caption_ext, "said": f"saved {written.name}"})
    return RedirectResponse(f"/datasets/{index}?{back}#clip-{clip}", status_code=303)
