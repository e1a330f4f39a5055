"""gunicorn processes under test, and what /proc says about them.

CPU time is read from /proc/<pid>/stat: utime + stime of the master and of every
live worker, plus cutime + cstime of the master, which holds the time of workers
it has already reaped. That sum only grows, even when gunicorn recycles workers
(max_requests) during a run, so its difference across a run is the whole server's
CPU for that run, whatever else the machine is doing.
"""

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stat_fields(pid: int) -> list[str]:
    """Fields 3 onwards of /proc/<pid>/stat (the name, field 2, may contain spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


@dataclass
class Server:
    """One gunicorn master and its workers, in a process group of their own."""

    name: str
    command: list[str]
    cwd: Path
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output_path(self) -> Path:
        return self.log_dir / f"{self.name}.out"

    def start(self) -> None:
        command = [*self.command, "--bind", f"127.0.0.1:{self.port}"]
        with self.output_path.open("wb") as output:
            self.process = subprocess.Popen(
                command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                # A group of its own: stop() reaches workers even if the master died.
                start_new_session=True,
            )

    def wait_until_answering(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.output()}")
            if len(self.workers()) > 0 and self._answers():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s:\n{self.output()}")

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def stop(self) -> None:
        """SIGTERM (gunicorn's graceful stop), then SIGKILL for the whole group."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

    def workers(self) -> list[int]:
        master = self.process.pid if self.process else -1
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if int(_stat_fields(int(entry.name))[1]) == master:
                        pids.append(int(entry.name))
        return sorted(pids)

    def cpu_seconds(self) -> float:
        """CPU time of the master, its reaped workers and its live workers, in seconds."""
        master = _stat_fields(self.process.pid)
        ticks = sum(int(value) for value in master[11:15])  # utime stime cutime cstime
        for pid in self.workers():
            with contextlib.suppress(OSError):
                ticks += sum(int(value) for value in _stat_fields(pid)[11:13])
        return ticks / CLOCK_TICKS

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of each live worker (VmRSS), in MiB."""
        sizes = []
        for pid in self.workers():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes.append(int(line.split()[1]) / 1024)
        return sizes

    def output(self) -> str:
        try:
            return self.output_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def wait_until_idle(servers: list[Server], timeout: float = 20) -> None:
    """Until no server burns CPU: requests wrk abandoned at its deadline are still served.

    Reading CPU before this would leave their cost to the next run.
    """
    deadline = time.monotonic() + timeout
    previous = sum(server.cpu_seconds() for server in servers)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        current = sum(server.cpu_seconds() for server in servers)
        if current - previous <= 1 / CLOCK_TICKS:
            return
        previous = current
