"""The server over HTTP, as a script or another site would reach it: where it listens, what it serves, what it refuses."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from tests.ui.conftest import REPO_ROOT, child_env


def request(url: str, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    """`path` sent exactly as given (no client-side normalising of `..` or of %-escapes)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


@pytest.mark.slow
def test_the_server_starts_on_a_free_loopback_port_and_lists_command_line_runs(ui_server, cli_run):
    parts = urlsplit(ui_server.url)
    assert parts.hostname == "127.0.0.1" and parts.port not in (None, 8675)
    status, headers, body = request(ui_server.url, "GET", "/api/runs")
    assert status == 200
    runs = {run["name"]: run for run in json.loads(body)["runs"]}
    assert (runs["cli_run"]["state"], runs["cli_run"]["started_by"], runs["cli_run"]["step"]) == ("finished", "command line", 10)
    status, headers, body = request(ui_server.url, "GET", "/")
    assert status == 200 and b'href="/runs/0/cli_run"' in body
    assert "frame-ancestors 'none'" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"
    assert b"http://" not in body.replace(b"http://127.0.0.1", b"")  # nothing from elsewhere: every asset is the app's


@pytest.mark.slow
def test_a_file_of_a_run_is_served_whole_and_in_ranges(ui_server, cli_run):
    expected = (cli_run / "checkpoints" / "step_000000010" / "state.json").read_bytes()
    status, _, body = request(ui_server.url, "GET", "/runs/0/cli_run/files/checkpoints/step_000000010/state.json")
    assert (status, body) == (200, expected)
    status, headers, body = request(ui_server.url, "GET", "/runs/0/cli_run/files/samples/000000010_0.mp4", {"Range": "bytes=0-99"})
    assert status == 206 and len(body) == 100 and headers["content-range"].startswith("bytes 0-99/")


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        "/runs/0/cli_run/files/../../../../../etc/passwd",
        "/runs/0/cli_run/files/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/runs/0/cli_run/files/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/runs/0/cli_run/files/%252e%252e/%252e%252e/etc/passwd",
        "/runs/0/cli_run/files//etc/passwd",
        "/runs/0/..%2f..%2f..%2fetc/files/passwd",
        "/runs/0/..",
        "/runs/7/cli_run",
        "/runs/0/cli_run/files/escape/passwd",
        "/datasets/0/files/../../../../etc/passwd",
        "/datasets/0/files/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/datasets/0?path=../../../etc",
    ],
)
def test_paths_outside_the_served_folders_get_403_or_404(ui_server, cli_run, path):
    escape = cli_run / "escape"
    if not escape.is_symlink():
        escape.symlink_to("/etc")  # a link inside a run that points out of it
    status, _, body = request(ui_server.url, "GET", path)
    assert status in (403, 404), (status, body[:200])
    assert b"root:" not in body


@pytest.mark.slow
def test_a_change_needs_this_servers_csrf_token_and_origin(ui_server, cli_run):
    csrf = json.loads(request(ui_server.url, "GET", "/api/session")[2])["csrf"]
    form = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    no_token = request(ui_server.url, "POST", "/runs/0/cli_run/resume", form, b"")
    assert no_token[0] == 403 and b"CSRF" in no_token[2]
    other_site = request(ui_server.url, "POST", "/runs/0/cli_run/resume", {**form, "Origin": "http://evil.example"}, f"csrf={csrf}".encode())
    assert other_site[0] == 403
    rebinding = request(ui_server.url, "GET", "/api/runs", {"Host": "attacker.example:80"})
    assert rebinding[0] == 421
    wrong_delete = request(ui_server.url, "POST", "/runs/0/cli_run/delete", form, f"csrf={csrf}&confirm=other".encode())
    assert wrong_delete[0] == 200 and json.loads(wrong_delete[2])["said"].startswith("not deleted")
    assert (cli_run / "cli_run.safetensors").is_file()


def test_a_non_loopback_bind_refuses_requests_without_the_token(tmp_path):
    env = {**child_env(), "LTX2_UI_TOKEN": "secret-token-for-the-test"}
    server = subprocess.Popen(
        [sys.executable, "run.py", "ui", "--host", "0.0.0.0", "--port", "0", "--training-folder", str(tmp_path)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = server.stdout.readline()
        assert "token from LTX2_UI_TOKEN" in line and "secret-token" not in line
        url = f"http://127.0.0.1:{urlsplit(line.split('UI on ', 1)[1].split()[0]).port}/"
        assert request(url, "GET", "/api/runs")[0] == 401
        assert request(url, "GET", "/api/runs", {"Authorization": "Bearer wrong"})[0] == 401
        assert request(url, "GET", "/api/runs", {"Authorization": "Bearer secret-token-for-the-test"})[0] == 200
        status, headers, _ = request(url, "GET", "/?token=secret-token-for-the-test")
        assert status == 303 and headers["location"] == "/" and "ltx2_ui_token=secret-token-for-the-test" in headers["set-cookie"]
        assert request(url, "GET", "/", {"Cookie": "ltx2_ui_token=secret-token-for-the-test"})[0] == 200
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


@pytest.mark.slow
def test_a_command_line_run_resumes_with_the_config_of_its_newest_checkpoint_pinned_to_its_folder(ui_server, cli_run):
    from ui.folders import Folders
    from ui.job_queue import JobQueue
    from ui.jobs import Launches

    folders = Folders([ui_server.runs], [ui_server.datasets], REPO_ROOT)
    config, extra = JobQueue(folders, Launches(cli_run.parent / ".ltx2-ui" / "test.sqlite"))._resume_config(cli_run)
    assert config == cli_run / "checkpoints" / "step_000000010" / "config.yaml"
    assert extra == [f"--set=config.process.0.training_folder={ui_server.runs}"]


def _multipart(fields: dict[str, str], upload: tuple[str, bytes] | None) -> tuple[str, bytes]:
    boundary = "ltx2uitestboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode() for name, value in fields.items()]
    if upload is not None:
        filename, data = upload
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="upload"; filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        parts.append(head.encode() + data + b"\r\n")
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()


@pytest.mark.slow
def test_a_job_sent_as_yaml_or_an_upload_is_checked_like_run_py_and_bad_uploads_are_refused(ui_server):
    csrf = json.loads(request(ui_server.url, "GET", "/api/session")[2])["csrf"]

    def check(fields: dict[str, str], upload=None):
        content_type, body = _multipart({"csrf": csrf, **fields}, upload)
        status, _, answer = request(ui_server.url, "POST", "/api/jobs/check", {"Content-Type": content_type}, body)
        return status, json.loads(answer)

    twice = "job: extension\nconfig:\n  name: twice\n  process:\n    - type: sd_trainer\n      device: cpu\n      device: cuda\n"
    status, answer = check({"yaml": twice})
    assert status == 422 and not answer["ok"]
    assert {"key": "config.process[0].device", "message": "key given twice (line 6 and line 7); only the later value would be used, so delete the one you do not mean"} in answer["problems"]
    status, answer = check({}, ("job.txt", b"job: extension\n"))
    assert status == 422 and answer["problems"] == [{"key": "", "message": "job.txt: upload a .yaml, .yml or .json job file"}]
    status, answer = check({}, ("job.yaml", b"x" * (256 * 1024 + 1)))
    assert status == 422 and "over 256 KB" in answer["problems"][0]["message"]
    status, answer = check({}, ("job.json", b'{"job": "extension", "config": {"name": "j", "process": [{"type": "diffusion_trainer", "modle": {}}]}}'))
    assert status == 422 and any(problem["key"] == "config.process[0].modle" for problem in answer["problems"]), answer
    assert not any(path.name in ("twice", "j") for path in ui_server.runs.iterdir())
