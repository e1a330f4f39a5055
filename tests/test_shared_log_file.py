"""The log file every worker shares: rotated by size, no line lost, split or doubled."""

import logging
import multiprocessing
from pathlib import Path

from backend.shared_log_file import SharedRotatingFileHandler


def make_logger(path: Path, max_bytes: int, backup_count: int) -> logging.Logger:
    handler = SharedRotatingFileHandler(str(path), max_bytes, backup_count)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.Logger(f"shared-log-test-{id(handler)}")
    logger.addHandler(handler)
    return logger


def all_lines(path: Path) -> list[str]:
    files = [path, *sorted(path.parent.glob(f"{path.name}.[0-9]*"))]
    return [line for file in files for line in file.read_text().splitlines()]


def write_lines(logger: logging.Logger, writer: int, count: int) -> None:
    for number in range(count):
        logger.info("writer %d line %d %s", writer, number, "x" * (number % 300))


def test_processes_writing_at_once_lose_split_and_double_no_line(tmp_path):
    path = tmp_path / "shared.log"
    # Made and used before the fork, as in gunicorn's preloading master: the
    # workers start with the master's open file.
    logger = make_logger(path, max_bytes=20_000, backup_count=1000)
    logger.info("before the fork")
    processes = [
        multiprocessing.get_context("fork").Process(target=write_lines, args=(logger, writer, 1500))
        for writer in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    lines = all_lines(path)
    expected = {"before the fork"} | {
        f"writer {writer} line {number} {'x' * (number % 300)}"
        for writer in range(4)
        for number in range(1500)
    }
    assert len(lines) == len(expected)
    assert set(lines) == expected
    backups = list(tmp_path.glob("shared.log.[0-9]*"))
    assert len(backups) > 10  # it did rotate, often
    # Only a full file is rotated, however many processes found it full at once.
    assert all(backup.stat().st_size >= 20_000 for backup in backups)


def test_rotation_keeps_backup_count_files_of_about_max_bytes(tmp_path):
    path = tmp_path / "app.log"
    logger = make_logger(path, max_bytes=1000, backup_count=3)
    for number in range(200):
        logger.info("line %03d %s", number, "y" * 40)

    backups = sorted(tmp_path.glob("app.log.[0-9]*"))
    assert [file.name for file in backups] == ["app.log.1", "app.log.2", "app.log.3"]
    assert all(1000 <= file.stat().st_size < 1100 for file in backups)
    oldest_first = [*reversed(backups), path]
    numbers = [
        int(line.split()[1]) for file in oldest_first for line in file.read_text().splitlines()
    ]
    assert numbers == list(range(numbers[0], 200))


def test_a_process_whose_file_another_rotated_writes_to_the_new_file(tmp_path):
    path = tmp_path / "app.log"
    idle = make_logger(path, max_bytes=1000, backup_count=2)
    busy = make_logger(path, max_bytes=1000, backup_count=2)
    idle.info("before")
    for number in range(100):  # busy rotates the file several times
        busy.info("busy %03d %s", number, "z" * 40)

    idle.info("after")

    assert path.read_text().splitlines()[-1] == "after"
    assert (tmp_path / "app.log.2").exists() and not (tmp_path / "app.log.3").exists()


def test_no_file_is_made_before_the_first_line(tmp_path):
    make_logger(tmp_path / "quiet.log", max_bytes=1000, backup_count=2)

    assert list(tmp_path.iterdir()) == []


def test_a_log_file_that_cannot_be_opened_does_not_fail_the_caller(tmp_path, capsys):
    path = tmp_path / "gone" / "app.log"
    logger = make_logger(path, max_bytes=1000, backup_count=2)

    logger.error("nowhere to go")  # the directory does not exist

    assert "FileNotFoundError" in capsys.readouterr().err  # reported, as logging does


def test_a_zero_size_or_count_leaves_rotation_to_logrotate(tmp_path):
    for max_bytes, backup_count in ((0, 5), (1000, 0)):
        path = tmp_path / f"{max_bytes}-{backup_count}.log"
        logger = make_logger(path, max_bytes, backup_count)
        for number in range(100):
            logger.info("line %03d %s", number, "w" * 40)
        assert path.stat().st_size > 4000
        assert list(tmp_path.glob(f"{path.name}.*")) == []


def test_text_that_is_not_valid_unicode_is_written_escaped(tmp_path):
    path = tmp_path / "app.log"
    make_logger(path, max_bytes=1000, backup_count=2).info("bad \udcff end")

    assert path.read_text() == "bad \\udcff end\n"
