"""A second, throwaway Elasticsearch node that fault tests stop and start themselves.

It runs ``scripts/elasticsearch.sh`` with its own port and home folder, so a
test can take it down without touching the shared development node (port
9200, ``var/elasticsearch``) that other tests and people use: both are
refused here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess  # nosec B404 # a fixed argv (our own script), never a shell
import time
from pathlib import Path

import urllib3

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "elasticsearch.sh"
SHARED_PORT = 9200


def default_home(name: str = "es-faults") -> Path:
    """``var/<name>``, or, as the script does for root, a folder under /var/tmp when the node's
    unprivileged user could not enter the checkout (a folder above it lacks o+x, as /root has)."""
    if os.geteuid() == 0 and not all(os.stat(p).st_mode & 0o001 for p in [REPO, *REPO.parents][:-1]):
        digest = hashlib.sha256(str(REPO).encode()).hexdigest()[:10]
        return Path("/var/tmp") / f"eyepic-{name}-{digest}"  # nosec B108 # as scripts/elasticsearch.sh: one the node's user reaches
    return REPO / "var" / name


class EsNodeError(RuntimeError):
    """The node could not be started or stopped (no Java, no distribution, a timeout)."""


class EsNode:
    """One single-node cluster on ``port`` with its files under ``home``."""

    def __init__(self, port: int, home: Path):
        if port == SHARED_PORT or Path(home).resolve() == (REPO / "var" / "elasticsearch").resolve():
            raise ValueError("the shared development node (port 9200, var/elasticsearch) is not ours to stop")
        self.port = port
        self.home = Path(home)
        self._http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1, read=5), retries=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _script(self, action: str, timeout_s: float) -> str:
        env = dict(os.environ, EYEPIC_ES_PORT=str(self.port), EYEPIC_ES_HOME_DIR=str(self.home))
        argv = [str(SCRIPT), action]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)  # nosec B603 # our own script, a fixed argv, no shell
        if done.returncode:
            raise EsNodeError(f"elasticsearch.sh {action} (port {self.port}): {done.stderr.strip()[-2000:]}")
        return done.stderr

    def start(self, timeout_s: float = 300.0) -> EsNode:
        """Start (or find running) and wait for yellow or green."""
        self._script("start", timeout_s)
        return self

    def stop(self, timeout_s: float = 120.0) -> None:
        self._script("stop", timeout_s)
        deadline = time.monotonic() + 30
        while self.answers():
            if time.monotonic() > deadline:
                raise EsNodeError(f"the node on {self.url} still answers after stop")
            time.sleep(0.2)

    def wipe(self) -> None:
        """Delete the node's data (it must be stopped); the unpacked distribution stays."""
        if self.answers():
            raise EsNodeError("stop the node before wiping its data")
        shutil.rmtree(self.home / "data", ignore_errors=True)

    def answers(self) -> bool:
        try:
            return self._http.request("GET", f"{self.url}/_cluster/health").status == 200
        except urllib3.exceptions.HTTPError:
            return False
