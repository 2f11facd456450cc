"""Test and benchmark harness around the TF Serving stand-in (``serving.devserver``).

Kept out of the serving package: a child-process launcher, a free-port
finder and a config writer are for tests, benchmarks and scripts, never for
a process that serves users.
"""

from __future__ import annotations

import subprocess  # nosec B404 # fixed argv lists below, never a shell
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
from tensorflow_serving.config import model_server_config_pb2


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for tests and benchmarks)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class DevServerProcess:
    """Runs ``python -m serving.devserver`` as a child process, for tests and benchmarks.

    A separate process so a test can stop it (the client sees a dead
    server, as in production) and start it again on the same port.
    """

    def __init__(self, config: Path | str, port: int, host: str = "127.0.0.1",
                 models_root: str | None = None, log_path: Path | str | None = None):
        self.config = Path(config)
        self.port = port
        self.host = host
        self.models_root = models_root
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 180.0) -> DevServerProcess:
        """Start and wait until it answers gRPC (models loaded and warmed up)."""
        command = [sys.executable, "-m", "serving.devserver", "--model_config_file", str(self.config),
                   "--port", str(self.port), "--host", self.host]
        if self.models_root:
            command += ["--models_root", self.models_root]
        log_file = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            # B603 (subprocess): our own dev server, a fixed argv, no shell
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,  # nosec B603
                                            cwd=Path(__file__).resolve().parents[1])
        finally:
            if log_file is not subprocess.DEVNULL:
                log_file.close()
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"devserver exited with {self.process.returncode}"
                                       + (f"; see {self.log_path}" if self.log_path else ""))
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.5)
                    return self
                except grpc.FutureTimeoutError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise TimeoutError(f"devserver not ready on {self.target} after {timeout_s} s") from None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> DevServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_config(path: Path | str, models: dict[str, Path | str],
                 labels: Mapping[str, int] | Sequence[str] | None = None,
                 versions: Sequence[int] | Mapping[str, int] = (1,)) -> Path:
    """A model_config_list text proto serving ``models`` (name -> base path), for tests and tools.

    ``versions``: the versions every model serves, with ``labels`` mapping each label to
    one of them; or one version per model name, with ``labels`` naming the labels, each
    pointing at that model's own version."""
    from google.protobuf import text_format

    config = model_server_config_pb2.ModelServerConfig()
    for name, base in models.items():
        entry = config.model_config_list.config.add(name=name, base_path=str(base), model_platform="tensorflow")
        if isinstance(versions, Mapping):
            own, pointed = [versions[name]], dict.fromkeys(labels or (), versions[name])
        else:
            own, pointed = list(versions), dict(labels or {})
        entry.model_version_policy.specific.versions.extend(own)
        for label, version in pointed.items():
            entry.version_labels[label] = version
    Path(path).write_text(text_format.MessageToString(config))
    return Path(path)
