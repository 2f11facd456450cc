"""The demo serves through gunicorn, the production WSGI server, not Flask's development server.

``eyepic demo`` ends by replacing itself with ``eyepic serve --workers N``
(N = 2, or EYEPIC_WORKERS): it has run TensorFlow while indexing, and a
forked TensorFlow runtime can hang. The slow test runs that very hand-over
with the tiny model and checks the page and the API answer as under Flask.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app import cli, launch
from devtools.harness import free_port
from eyepic.settings import Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    monkeypatch.setattr(launch, "exec_serve", lambda workers: seen.append(("exec gunicorn", workers)) or 0)
    monkeypatch.setattr(launch, "serve_gunicorn", lambda settings, workers: seen.append(("gunicorn", workers)) or 0)
    monkeypatch.setattr(launch, "serve_flask", lambda settings: seen.append(("flask", 0)) or 0)
    return seen


def test_the_demo_serves_with_gunicorn_in_a_fresh_process(calls) -> None:
    demo_args = argparse.Namespace(config=None, train=False)
    cli.cmd_serve(Settings(), demo_args, default_workers=cli.DEMO_WORKERS, fresh_process=True)
    cli.cmd_serve(Settings.from_env({"EYEPIC_WORKERS": "3"}), demo_args, default_workers=cli.DEMO_WORKERS,
                  fresh_process=True)
    assert calls == [("exec gunicorn", 2), ("exec gunicorn", 3)]


def test_serve_keeps_its_choices(calls) -> None:
    cli.cmd_serve(Settings(), argparse.Namespace(workers=None))
    cli.cmd_serve(Settings(), argparse.Namespace(workers=4))
    assert calls == [("flask", 0), ("gunicorn", 4)]


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 (a local test server)
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _post_photo(url: str, photo: bytes) -> tuple[int, dict]:
    boundary = "eyepic-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize("tf_threads, workers, cpus, environ, expected", [
    (0, 2, 2, {}, "1"),  # the cores shared among the workers
    (0, 2, 16, {}, "8"),
    (0, 4, 2, {}, "1"),  # never below one
    (3, 2, 2, {}, "3"),  # EYEPIC_TF_THREADS decides
    (0, 2, 2, {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "2"}, None),  # set by the user: kept
])
def test_each_gunicorn_worker_gets_its_share_of_the_cores(tf_threads, workers, cpus, environ, expected):
    settings = Settings.from_env({"EYEPIC_TF_THREADS": str(tf_threads)})
    env = launch.tf_thread_env(settings, workers, cpus, environ)
    assert env == ({} if expected is None else {"TF_NUM_INTRAOP_THREADS": expected,
                                                 "TF_NUM_INTEROP_THREADS": expected})


def test_a_worker_warms_both_models_up_before_taking_traffic(caplog):
    from serving.analyzer import Analyzer

    from fakes import FakeModels

    models = FakeModels(detections=[(0.2, 0.1, 0.8, 0.9)])
    assert launch.warm_up(Analyzer(models)) >= 0
    assert [name for name, _ in models.calls] == ["detector", "classifier"]
    down = FakeModels(available=False)  # a model server still starting: a warning, not a failure
    with caplog.at_level("WARNING", logger="app.launch"):
        assert launch.warm_up(Analyzer(down)) is None
    assert "warm-up skipped" in caplog.text


@pytest.mark.slow
def test_the_demo_hand_over_serves_page_and_api_under_gunicorn(tiny_model_dir, photo, tmp_path) -> None:
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "EYEPIC_MODEL_DIR": str(tiny_model_dir),
           "EYEPIC_VAR_DIR": str(tmp_path / "var"), "EYEPIC_PORT": str(port)}
    log = (tmp_path / "serve.log").open("wb")
    child = subprocess.Popen([sys.executable, "-c", "from app.launch import exec_serve; exec_serve(2)"],
                             cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if _get(base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert child.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "gunicorn did not answer in 180 s"
            time.sleep(1)
        status, headers, page = _get(base + "/")
        assert status == 200 and b"app.js" in page
        assert "gunicorn" in headers.get("Server", "")
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        status, _, doc = _get(base + "/api/v1/openapi.json")
        assert status == 200 and json.loads(doc)["openapi"].startswith("3.1")
        status, body = _post_photo(base + "/api/v1/search", photo)
        assert status == 200, body
        assert body["garments"] and body["model_version"].startswith("classifier")
        status, body = _post_photo(base + "/api/v1/search", b"<svg/>")
        assert status == 415 and body["invalid_params"][0]["name"] == "image"
    except (OSError, AssertionError) as exc:  # what gunicorn said is the clue: keep it in the report
        raise AssertionError(f"{exc}\n--- serve.log ---\n{(tmp_path / 'serve.log').read_text()[-4000:]}") from exc
    finally:
        os.killpg(child.pid, signal.SIGTERM)  # our own child's session: gunicorn and its workers
        child.wait(timeout=60)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert "2 gunicorn workers" in output
    assert f"TensorFlow threads per worker: {max(1, (os.cpu_count() or 1) // 2)}" in output
    assert "development server" not in output
