"""The runs list, the run page (and its live parts), the run's files, and the controls.

    GET  /                                  runs list              GET /api/runs
    GET  /runs/{i}/{name}                   run page               GET /api/runs/{i}/{name}
    GET  /api/runs/{i}/{name}/metrics?offset=N   chart series after byte N of metrics.jsonl
    GET  /api/runs/{i}/{name}/trace         the trace's timelines, phase totals, plan against measured
    GET  /runs/{i}/{name}/files/{path}      a file of the run (samples, LoRAs, checkpoints, inspection)
    GET  /runs/{i}/{name}/delete            asks to confirm
    POST /runs/{i}/{name}/stop|resume|start|delete
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from urllib.parse import urlencode

import anyio

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .page_context import posted_form, ui_of, wants_json
from .folders import NotFound, inside
from .metrics import read_metrics
from .run_folder import Sample, checkpoints, inspections, log_tail, lora_files, read_config, samples
from .run_state import list_runs, summarize
from .trace_view import read_trace

TIMELINE_WIDTH = 1000
LANE_LABEL_WIDTH = 170
LANE_HEIGHT = 16


def routes() -> list[Route]:
    return [
        Route("/", runs_page),
        Route("/api/runs", runs_json),
        Route("/runs/{index:int}/{name}", run_page),
        Route("/api/runs/{index:int}/{name}", run_json),
        Route("/api/runs/{index:int}/{name}/metrics", metrics_json),
        Route("/api/runs/{index:int}/{name}/trace", trace_json),
        Route("/runs/{index:int}/{name}/files/{path:path}", run_file),
        Route("/runs/{index:int}/{name}/delete", confirm_delete),
        Route("/runs/{index:int}/{name}/{action}", control, methods=["POST"]),
    ]


# -- the runs list ------------------------------------------------------------------------------
def runs_page(request: Request) -> Response:
    ui = ui_of(request)
    return ui.page(request, "runs.html", runs=list_runs(ui.folders, ui.launches))


def runs_json(request: Request) -> Response:
    ui = ui_of(request)
    return JSONResponse({"runs": [run.as_json() for run in list_runs(ui.folders, ui.launches)]})


# -- one run ------------------------------------------------------------------------------------
@dataclass
class Gallery:
    """Samples as rows of steps (newest first) by columns of prompts, and two steps side by side."""

    prompts: list[str]
    rows: list[tuple[int, list[Sample | None]]]
    steps: list[int]
    a: int | None
    b: int | None

    def at(self, step: int | None) -> list[Sample | None]:
        return next((cells for row_step, cells in self.rows if row_step == step), [])


def gallery(found: list[Sample], prompts: list[str], a: str | None = None, b: str | None = None) -> Gallery:
    count = max([len(prompts)] + [sample.prompt_index + 1 for sample in found])
    names = [prompts[i] if i < len(prompts) else f"prompt {i}" for i in range(count)]
    by_step: dict[int, list[Sample | None]] = {}
    for sample in found:
        by_step.setdefault(sample.step, [None] * count)[sample.prompt_index] = sample
    steps = sorted(by_step)
    chosen_a = int(a) if a and a.isdigit() and int(a) in by_step else (steps[0] if steps else None)
    chosen_b = int(b) if b and b.isdigit() and int(b) in by_step else (steps[-1] if steps else None)
    return Gallery(names, [(step, by_step[step]) for step in reversed(steps)], steps, chosen_a, chosen_b)


def run_view(request: Request) -> dict:
    ui = ui_of(request)
    index, name = request.path_params["index"], request.path_params["name"]
    folder = ui.folders.run_folder(index, name)
    config = read_config(folder)
    return {
        "run": summarize(index, folder, ui.launches),
        "config": config,
        "gallery": gallery(samples(folder), config.prompts if config else [], request.query_params.get("a"), request.query_params.get("b")),
        "loras": lora_files(folder),
        "checkpoints": checkpoints(folder),
        "log": log_tail(folder),
        "launches": ui.launches.of_run(folder),
        "inspections": inspections(folder),
    }


def run_page(request: Request) -> Response:
    view = run_view(request)
    timelines = read_trace(view["run"].folder)
    return ui_of(request).page(
        request, "run.html", **view, timelines=[timeline_layout(timeline) for timeline in timelines],
        latest_timeline=timelines[-1] if timelines else None,
    )


def run_json(request: Request) -> Response:
    view = run_view(request)
    run, base = view["run"], view["run"].url
    return JSONResponse(
        {
            "run": run.as_json(),
            "prompts": view["gallery"].prompts,
            "samples": [{**asdict(sample), "url": f"{base}/files/{sample.path}"} for sample in _samples_of(view["gallery"])],
            "loras": [{**asdict(file), "url": f"{base}/files/{file.path}"} for file in view["loras"]],
            "checkpoints": [
                {"step": checkpoint.step, "files": [{**asdict(file), "url": f"{base}/files/{file.path}"} for file in checkpoint.files]}
                for checkpoint in view["checkpoints"]
            ],
            "log": view["log"],
            "config": view["config"].text if view["config"] else None,
            "launches": [{**asdict(launch), "run_folder": str(launch.run_folder), "config_path": str(launch.config_path)} for launch in view["launches"]],
            "inspections": [asdict(inspection) for inspection in view["inspections"]],
        }
    )


def _samples_of(found: Gallery) -> list[Sample]:
    return [sample for _, cells in reversed(found.rows) for sample in cells if sample is not None]


def metrics_json(request: Request) -> Response:
    ui = ui_of(request)
    folder = ui.folders.run_folder(request.path_params["index"], request.path_params["name"])
    offset = request.query_params.get("offset", "0")
    return JSONResponse(read_metrics(folder, int(offset) if offset.isdigit() else 0).as_json())


def trace_json(request: Request) -> Response:
    ui = ui_of(request)
    folder = ui.folders.run_folder(request.path_params["index"], request.path_params["name"])
    return JSONResponse(
        {
            "timelines": [
                {
                    "started": timeline.started,
                    "seconds": timeline.seconds,
                    "resume_from_step": timeline.resume_from_step,
                    "lanes": [
                        {"name": lane.name, "total": lane.total, "spans": [{**asdict(span), "seconds": span.seconds} for span in lane.spans]}
                        for lane in timeline.lanes
                    ],
                    "phase_totals": timeline.phase_totals,
                    "plan": [{**asdict(row), "over_budget": row.over_budget} for row in timeline.plan],
                    "plan_fits": timeline.plan_fits,
                    "latent_reports": timeline.latent_reports,
                }
                for timeline in read_trace(folder)
            ]
        }
    )


def timeline_layout(timeline) -> dict:
    """SVG coordinates of a timeline: one lane per span name, x from the start of the run's start."""
    scale = (TIMELINE_WIDTH - LANE_LABEL_WIDTH) / timeline.seconds
    lanes = []
    for row, lane in enumerate(timeline.lanes):
        boxes = [
            {
                "x": LANE_LABEL_WIDTH + (span.begin - timeline.started) * scale,
                "width": max(span.seconds * scale, 1.0),
                "title": span.describe(),
                "open": not span.ended,
            }
            for span in lane.spans
        ]
        lanes.append({"name": lane.name, "y": row * LANE_HEIGHT, "boxes": boxes, "thinned": lane.total > len(lane.spans), "total": lane.total})
    ticks = [{"x": LANE_LABEL_WIDTH + fraction * (TIMELINE_WIDTH - LANE_LABEL_WIDTH), "label": f"{fraction * timeline.seconds:.1f} s"} for fraction in (0, 0.25, 0.5, 0.75, 1)]
    return {
        "timeline": timeline,
        "lanes": lanes,
        "ticks": ticks,
        "width": TIMELINE_WIDTH,
        "height": len(lanes) * LANE_HEIGHT + 18,
        "label_width": LANE_LABEL_WIDTH,
        "lane_height": LANE_HEIGHT,
    }


def run_file(request: Request) -> Response:
    ui = ui_of(request)
    folder = ui.folders.run_folder(request.path_params["index"], request.path_params["name"])
    path = inside(folder, request.path_params["path"])
    if not path.is_file():
        raise NotFound(f"{request.path_params['path']!r} is not a file")
    download = path.suffix in (".safetensors", ".pt", ".yaml", ".json")
    return FileResponse(path, filename=path.name if download else None, content_disposition_type="attachment" if download else "inline")


# -- controls -----------------------------------------------------------------------------------
def confirm_delete(request: Request) -> Response:
    ui = ui_of(request)
    index, name = request.path_params["index"], request.path_params["name"]
    folder = ui.folders.run_folder(index, name)
    files = [path for path in folder.rglob("*") if path.is_file()]
    return ui.page(
        request, "confirm_delete.html", run=summarize(index, folder, ui.launches),
        file_count=len(files), total_size=sum(path.stat().st_size for path in files),
    )


async def control(request: Request) -> Response:
    ui = ui_of(request)
    form = await posted_form(request)
    index, name, action = request.path_params["index"], request.path_params["name"], request.path_params["action"]
    folder = ui.folders.run_folder(index, name)
    run_url = f"/runs/{index}/{name}"
    if action == "stop":
        said = await anyio.to_thread.run_sync(ui.queue.stop, index, folder)
    elif action == "resume":
        await anyio.to_thread.run_sync(ui.queue.resume, index, folder)
        said = "queued to resume"
    elif action == "start":
        await anyio.to_thread.run_sync(ui.queue.start_now, folder)
        said = "started"
    elif action == "delete":
        if form.get("confirm") != name:
            said, run_url = "not deleted: type the run's name to confirm", f"{run_url}/delete"
        else:
            await anyio.to_thread.run_sync(ui.queue.delete, index, folder)
            said, run_url = f"deleted {name}", "/"
    else:
        raise NotFound(f"unknown action {action!r}")
    if wants_json(request):
        return JSONResponse({"said": said, "url": run_url})
    return RedirectResponse(f"{run_url}?{urlencode({'said': said})}", status_code=303)
