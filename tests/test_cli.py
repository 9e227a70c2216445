"""The `rung` command's errors: one line on stderr, `rung: <why>`, exit code 2, never a
traceback; Ctrl-C exits 130 quietly. None of these needs a running stack."""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import RUNG, rung

SLOW_FACTORY = """import asyncio

async def factory():
    print("waiting", flush=True)
    await asyncio.sleep(60)
"""


def assert_one_line_error(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert (done.returncode, done.stderr.splitlines()) == (2, [f"rung: {message}"])


def test_a_queue_url_that_is_not_redis_is_one_line() -> None:
    done = rung("replay-dead", "clicks", "--queue", "http://x/", timeout=60)
    assert_one_line_error(done, "unsupported queue URL 'http://x/': rung speaks Redis Streams")


def test_a_queue_redis_that_refuses_the_connection_is_one_line() -> None:
    done = rung("replay-dead", "clicks", "--queue", "redis://127.0.0.1:1/0", timeout=60)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("rung: ") and "127.0.0.1:1" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["drain", "nosuchmodule:factory"], "cannot import 'nosuchmodule': "
         "No module named 'nosuchmodule'"),
        (["drain", "no_colon"], "expected MODULE:FACTORY (e.g. app.workers:clicks), "
         "got 'no_colon'"),
        (["status", "--dir", "/nonexistent"], "no stack in /nonexistent: start one with "
         "`rung up --dir /nonexistent`"),
        (["env", "--dir", "/nonexistent"], "no stack running in /nonexistent: start one with "
         "`rung up`"),
        (["replay-dead", "clicks", "--dir", "/nonexistent"], "no stack running in "
         "/nonexistent: pass --queue URL"),
        (["lint", "no/such/file.py", "no/such/dir"], "no such file or directory: "
         "no/such/file.py, no/such/dir"),
    ],
)  # fmt: skip
def test_a_rung_error_is_one_line(args: list[str], message: str) -> None:
    assert_one_line_error(rung(*args, timeout=60), message)


def test_a_stack_dir_that_is_not_a_directory_is_one_line(tmp_path: Path) -> None:
    """The file system's error (here ENOTDIR; EACCES for an unreadable directory)."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    done = rung("status", "--dir", str(not_a_dir), timeout=60)
    assert_one_line_error(done, f"[Errno 20] Not a directory: '{not_a_dir}/stack.json'")


def test_a_usage_error_keeps_typers_message_and_exit_code_2() -> None:
    done = rung("lint", "--no-such-option", ".", timeout=60)
    assert done.returncode == 2
    assert "No such option: --no-such-option" in done.stderr
    assert "Traceback" not in done.stderr


def test_ctrl_c_exits_130_without_a_traceback(tmp_path: Path) -> None:
    """SIGINT while `rung drain` awaits a slow factory (before the drain's own handler)."""
    (tmp_path / "slow.py").write_text(SLOW_FACTORY)
    with subprocess.Popen(
        [RUNG, "drain", "slow:factory"], cwd=tmp_path, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline() == "waiting\n"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert (proc.returncode, stderr) == (130, "")


def test_a_stack_file_that_is_a_fifo_is_one_line_not_a_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "stack.json")
    done = rung("status", "--dir", str(tmp_path), timeout=30)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "not a regular file" in done.stderr
