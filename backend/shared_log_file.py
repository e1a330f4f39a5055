"""A log file that every worker appends to, rotated by size without losing a line."""

import fcntl
import logging
import os
from io import TextIOWrapper
from logging.handlers import WatchedFileHandler


class SharedRotatingFileHandler(WatchedFileHandler):
    """Writing a line takes no lock; only rotating does.

    The file is opened for appending, and each line reaches it in one write: the
    kernel puts every such write whole at the end of the file, never interleaved with
    another process's (on a local filesystem). When the file has reached `max_bytes`,
    the process that notices takes an exclusive lock on `<file>.lock`, checks that no
    other process rotated it meanwhile, and renames the files as RotatingFileHandler
    does (file -> file.1 -> ... -> file.<backup_count>). Before each line, every
    process checks that the path still names the file it has open, and reopens it if
    not (WatchedFileHandler): a line written while another process rotates ends the
    previous file instead of starting the new one, and none is lost.
    """

    def __init__(self, filename: str, max_bytes: int, backup_count: int) -> None:
        # Opened at the first line: building an app (in tests, say) creates no file.
        super().__init__(filename, encoding="utf-8", errors="backslashreplace", delay=True)
        self.max_bytes = max_bytes
        self.backup_count = backup_count

    def _open(self) -> TextIOWrapper:
        stream = super()._open()
        # Remember which file is open, however it came to be opened.
        opened = os.fstat(stream.fileno())
        self.dev, self.ino = opened.st_dev, opened.st_ino
        return stream

    def emit(self, record: logging.LogRecord) -> None:
        # Whatever fails here (a file that cannot be reopened, say) is reported on
        # stderr by handleError, and never fails the request that logged.
        try:
            super().emit(record)
            if (
                self.max_bytes > 0
                and self.backup_count > 0
                and self.stream is not None
                and self.stream.tell() >= self.max_bytes
            ):
                self.rotate()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def rotate(self) -> None:
        # Opened for each rotation: a lock file opened before gunicorn forks would be
        # one open file, and its flock would be shared by every worker.
        with open(f"{self.baseFilename}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._is_open_and_full():
                for number in range(self.backup_count - 1, 0, -1):
                    older = f"{self.baseFilename}.{number}"
                    if os.path.exists(older):
                        os.replace(older, f"{self.baseFilename}.{number + 1}")
                os.replace(self.baseFilename, f"{self.baseFilename}.1")
            self.reopenIfNeeded()

    def _is_open_and_full(self) -> bool:
        try:
            current = os.stat(self.baseFilename)
        except FileNotFoundError:
            return False
        return (current.st_dev, current.st_ino) == (self.dev, self.ino) and (
            current.st_size >= self.max_bytes
        )
