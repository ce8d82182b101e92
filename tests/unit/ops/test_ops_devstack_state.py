"""How tools beside `make up` find its data and tell a running stack from a stopped one (portal_devstack.state)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from portal_devstack.state import StackState, find_var_dir, read_state, running_postgres_port, write_state


def make_var(root: Path) -> Path:
    var = root / "var"
    var.mkdir(parents=True)
    (var / "secrets.json").write_text("{}")
    return var


def test_the_nearest_var_with_stack_secrets_at_or_above_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTAL_VAR_DIR", raising=False)
    var = make_var(tmp_path / "repo")
    (tmp_path / "repo" / "services" / "profile").mkdir(parents=True)
    assert find_var_dir(tmp_path / "repo") == var
    assert find_var_dir(tmp_path / "repo" / "services" / "profile") == var
    (tmp_path / "elsewhere" / "var").mkdir(parents=True)  # a var/ that is not a stack's
    assert find_var_dir(tmp_path / "elsewhere") is None


def test_portal_var_dir_wins_as_for_make_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_var(tmp_path / "repo")
    other = make_var(tmp_path / "other")
    monkeypatch.setenv("PORTAL_VAR_DIR", str(other))
    assert find_var_dir(tmp_path / "repo") == other
    monkeypatch.setenv("PORTAL_VAR_DIR", str(tmp_path / "missing"))
    assert find_var_dir(tmp_path / "repo") is None


def test_state_round_trip_and_a_missing_or_broken_file(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    write_state(tmp_path, StackState(postgres_port=15432, base_url="http://localhost:18080"))
    assert read_state(tmp_path) == StackState(postgres_port=15432, base_url="http://localhost:18080")
    (tmp_path / "stack.json").write_text("{not json")
    assert read_state(tmp_path) is None


def _postmaster_pid(data: Path, pid: int, port: int) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "postmaster.pid").write_text(f"{pid}\n{data}\n1700000000\n{port}\n\n127.0.0.1\n")


def test_a_server_is_running_only_while_its_lock_file_names_a_live_process_that_listens(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert running_postgres_port(data) is None  # never started
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        _postmaster_pid(data, os.getpid(), port)
        assert running_postgres_port(data) == port
        _postmaster_pid(data, 2**22 + 12345, port)  # above pid_max: a stale file after a crash
        assert running_postgres_port(data) is None
    _postmaster_pid(data, os.getpid(), port)  # alive, but nothing listens any more
    assert running_postgres_port(data) is None
