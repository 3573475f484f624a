"""The new-job page: from an example through the form, or from pasted or uploaded YAML (ai-toolkit jobs too).

    GET  /new?example=NAME&mode=form|yaml   the page, filled from an example
    POST /new   action=check: run.py's checks, each problem next to its key, then the dry-run plan;
                action=queue: the same again, then the job folder with its job file, and the queue
    POST /api/jobs/check   {yaml}  -> the check as JSON          POST /api/jobs  {yaml}  -> queued
"""

from __future__ import annotations

from pathlib import Path

import anyio
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from toolkit.atomic_write import atomic_write

from .page_context import MAX_UPLOAD_BYTES, UI, posted_form, ui_of
from .job_check import JobCheck, Problem, check_job
from .job_form import DEVICES, FIELDS, KNOWN_MODELS, examples, field_help, form_values, job_from_form, load_example
from .run_folder import JOB_FILES

DEFAULT_EXAMPLE = "train_lora_ltx2_tiny.yaml"
UPLOAD_SUFFIXES = (".yaml", ".yml", ".json")


def routes() -> list[Route]:
    return [
        Route("/new", new_job_page),
        Route("/new", new_job_post, methods=["POST"]),
        Route("/api/jobs/check", check_json, methods=["POST"]),
        Route("/api/jobs", queue_json, methods=["POST"]),
    ]


def new_job_page(request: Request) -> Response:
    ui = ui_of(request)
    example = request.query_params.get("example", DEFAULT_EXAMPLE)
    raw = load_example(example if example in examples() else DEFAULT_EXAMPLE)
    values = form_values(raw, ui.folders)
    text = (Path(__file__).resolve().parent.parent / "config" / "examples" / example).read_text(encoding="utf-8") if example in examples() else ""
    return _render(request, ui, example, request.query_params.get("mode", "form"), values, text, None)


async def new_job_post(request: Request) -> Response:
    ui = ui_of(request)
    form = await posted_form(request)
    mode = "yaml" if form.get("mode") == "yaml" else "form"
    example = str(form.get("example") or DEFAULT_EXAMPLE)
    example = example if example in examples() else DEFAULT_EXAMPLE
    values = {field.name: str(form.get(field.name, "")) for field in FIELDS}
    if mode == "form":
        text, suffix = job_from_form(load_example(example), values), ".yaml"
        upload_problem = None
    else:
        text, suffix, upload_problem = await _posted_yaml(form)
    check = JobCheck(text, suffix, [upload_problem]) if upload_problem else await _check(ui, text, suffix)
    if form.get("action") == "queue" and check.ok:
        url = await anyio.to_thread.run_sync(_queue, ui, check, form.get("alongside") == "on")
        return RedirectResponse(url, status_code=303)
    return _render(request, ui, example, mode, values, text, check, status_code=200 if check.ok else 422)


async def _check(ui: UI, text: str, suffix: str) -> JobCheck:
    """check_job in a worker thread: the dry run takes seconds the first time (it imports the model code)."""
    return await anyio.to_thread.run_sync(check_job, text, ui.folders, suffix)


async def _posted_yaml(form: FormData) -> tuple[str, str, Problem | None]:
    """The job text from an uploaded file (size, type and encoding checked) or the text box."""
    upload = form.get("upload")
    if isinstance(upload, UploadFile) and upload.filename:
        suffix = Path(upload.filename).suffix.lower()
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        if suffix not in UPLOAD_SUFFIXES:
            return "", ".yaml", Problem("", f"{upload.filename}: upload a .yaml, .yml or .json job file")
        if len(data) > MAX_UPLOAD_BYTES:
            return "", suffix, Problem("", f"{upload.filename}: over {MAX_UPLOAD_BYTES // 1024} KB; a job file is a few KB")
        try:
            return data.decode("utf-8"), (".json" if suffix == ".json" else ".yaml"), None
        except UnicodeDecodeError:
            return "", suffix, Problem("", f"{upload.filename}: not UTF-8 text")
    text = str(form.get("yaml") or "")
    return text, (".json" if text.lstrip().startswith("{") else ".yaml"), None


def _queue(ui: UI, check: JobCheck, alongside: bool) -> str:
    """Create the run folder with its job file and queue it; the run page's URL."""
    folder = check.run_folder
    folder.mkdir(parents=True)  # checked free a moment ago; a race with another UI or run.py fails here, loudly
    job_file = folder / (JOB_FILES[1] if check.suffix == ".json" else JOB_FILES[0])
    with atomic_write(job_file) as temporary:
        temporary.write_text(check.text, encoding="utf-8")
    ui.queue.queue_new(folder, job_file, check.device or "cpu", alongside)
    index, name = ui.folders.locate_run(folder)
    return f"/runs/{index}/{name}"


def _render(request: Request, ui: UI, example: str, mode: str, values: dict, text: str, check: JobCheck | None, status_code: int = 200) -> Response:
    fields = [
        {
            "field": field,
            "value": values.get(field.name, ""),
            "help": field_help(field.key),
            "problems": check.about(field.key) if check else [],
        }
        for field in FIELDS
    ]
    shown = {id(problem) for entry in fields for problem in entry["problems"]}
    return ui.page(
        request, "new_job.html", status_code=status_code,
        examples=examples(), example=example, mode=mode, fields=fields, yaml_text=text, check=check,
        other_problems=[problem for problem in (check.problems if check else []) if id(problem) not in shown or mode == "yaml"],
        devices=DEVICES, known_models=KNOWN_MODELS,
    )


async def check_json(request: Request) -> Response:
    ui = ui_of(request)
    form = await posted_form(request)
    text, suffix, problem = await _posted_yaml(form)
    check = JobCheck(text, suffix, [problem]) if problem else await _check(ui, text, suffix)
    return JSONResponse(check.as_json(), status_code=200 if check.ok else 422)


async def queue_json(request: Request) -> Response:
    ui = ui_of(request)
    form = await posted_form(request)
    text, suffix, problem = await _posted_yaml(form)
    check = JobCheck(text, suffix, [problem]) if problem else await _check(ui, text, suffix)
    if not check.ok:
        return JSONResponse(check.as_json(), status_code=422)
    url = await anyio.to_thread.run_sync(_queue, ui, check, form.get("alongside") == "on")
    return JSONResponse({**check.as_json(), "url": url}, status_code=201)
