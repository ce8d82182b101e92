"""A PostgreSQL server from the OS packages on a loopback port, its data in a directory we own.

PostgreSQL refuses to run as root; as root we run it inside a user namespace where it is uid 1000
(files stay owned by root outside), which needs no `postgres` account and no chown.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from portal_devstack.process import Child, StartError, require_free_port, spawn, tcp_open, wait_until


def postgres_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not candidates:
        raise StartError("postgres: no server binaries under /usr/lib/postgresql/*/bin (install postgresql)")
    return Path(candidates[-1])


def _as_unprivileged(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["unshare", "--user", "--map-user=1000", "--map-group=1000", "--", *argv]
    return argv


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int
    log_path: Path
    fast: bool = False  # fsync off: for throwaway test clusters only
    child: Child | None = None
    # More `-c name=value` server settings (replication: see postgres_standby.py).
    extra_settings: list[str] = field(default_factory=list)

    @property
    def password_file(self) -> Path:
        return self.data_dir.parent / "postgres-superuser-password"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres:{self.password_file.read_text().strip()}@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.password_file.write_text(secrets.token_urlsafe(24))
        self.password_file.chmod(0o600)
        result = subprocess.run(
            _as_unprivileged([str(postgres_bindir() / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                              "--auth=scram-sha-256", f"--pwfile={self.password_file}", "-E", "UTF8",
                              "--locale=C.UTF-8"]),
            capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StartError(f"postgres: initdb failed in {self.data_dir}:\n{result.stderr[-2000:]}")

    def start(self, timeout: float = 30) -> None:
        require_free_port("postgres", self.port)
        self.init()
        settings = ["-c", f"port={self.port}", "-c", "listen_addresses=127.0.0.1",
                    "-c", "unix_socket_directories=", "-c", "max_connections=200"]
        if self.fast:
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        for setting in self.extra_settings:
            settings += ["-c", setting]
        self.child = spawn("postgres", _as_unprivileged([str(postgres_bindir() / "postgres"), "-D",
                                                          str(self.data_dir), *settings]),
                           log_path=self.log_path, stop_signal=signal.SIGINT)
        wait_until(self.child, self._accepting, timeout=timeout, what=f"connections on port {self.port}")

    def _accepting(self) -> bool:
        # The port opens before recovery ends ("the database system is starting up"): ask pg_isready.
        if not tcp_open(self.port):
            return False
        result = subprocess.run([str(postgres_bindir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                                 str(self.port)], capture_output=True, check=False)
        return result.returncode == 0

    def stop(self) -> None:
        if self.child:
            self.child.stop()

    def kill(self) -> None:
        """SIGKILL the server and every backend at once, as when its machine or container goes.

        Killing the process group is not enough: PostgreSQL's children call setsid(), so they would live on
        as orphans and tell their clients "terminating connection due to unexpected postmaster exit"."""
        if self.child and self.child.running():
            descendants = _descendants(self.child.process.pid)
            self.child.kill()
            for pid in descendants:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _descendants(root: int) -> list[int]:
    """Every process below `root` (from /proc), deepest last."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [root]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found
