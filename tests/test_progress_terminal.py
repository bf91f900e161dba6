"""Progress bars only on a terminal: a log file or a CI pipe gets no tqdm lines, a terminal does.
Every bar in the package comes from one helper, netlapse._progress.progress."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np

import netlapse as nl

ROOT = Path(__file__).resolve().parents[1]


def _run_check(path, stderr, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "NETLAPSE_PROGRESS"}
    env.update(env_extra or {})
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "netlapse.cli", "info", "--check", str(path)],
                          stdout=subprocess.PIPE, stderr=stderr, env=env, timeout=120)


def _small_run(path):
    with nl.Run(path) as run:
        for k in range(3):
            run.step = k
            run.record_array("weights/w", np.full((4, 4), k, np.float32))


def test_no_bar_in_a_log_file_and_a_bar_on_a_terminal(tmp_path):
    _small_run(tmp_path / "r")
    log = tmp_path / "stderr.log"
    with open(log, "wb") as f:
        assert _run_check(tmp_path / "r", f).returncode == 0
    assert "checking chunks" not in log.read_text()
    with open(log, "wb") as f:   # asked for: NETLAPSE_PROGRESS=1 shows it anywhere
        assert _run_check(tmp_path / "r", f, {"NETLAPSE_PROGRESS": "1"}).returncode == 0
    assert "checking chunks" in log.read_text()
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))   # a 100-column terminal
    try:
        assert _run_check(tmp_path / "r", child).returncode == 0
        os.close(child)
        child = None
        seen = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:   # the terminal's other end closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(main)
        if child is not None:
            os.close(child)
    assert b"checking chunks" in seen


def test_every_bar_in_the_package_comes_from_the_shared_helper():
    users = []
    for path in (ROOT / "netlapse").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"^\s*(from tqdm|import tqdm)", text, re.M) and path.name != "_progress.py":
            users.append(str(path.relative_to(ROOT)))
    assert users == []
