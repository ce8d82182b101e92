"""A streaming standby of a LocalPostgres on another loopback port, replicated synchronously.

The primary waits for the standby to have flushed each commit's WAL (synchronous_standby_names = '*',
synchronous_commit = on), so promoting the standby after the primary is lost loses no commit the
services saw succeed. The standby is made with `pg_basebackup -R` and promoted with `pg_promote()`.
The cost: every commit waits for a second fsync on the standby, and commits stop while no standby is
connected; the promoted standby itself has no standby and commits alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from portal_devstack.postgres import LocalPostgres, _as_unprivileged, postgres_bindir
from portal_devstack.process import StartError

# On the primary: each commit waits for one standby (any name) to flush its WAL.
SYNCHRONOUS_PRIMARY = ["synchronous_standby_names=*", "synchronous_commit=on", "wal_level=replica",
                       "max_wal_senders=10", "wal_keep_size=256MB"]


@dataclass
class LocalStandby:
    primary: LocalPostgres
    server: LocalPostgres

    @classmethod
    def create(cls, primary: LocalPostgres, data_dir: Path, port: int, log_path: Path) -> LocalStandby:
        return cls(primary, LocalPostgres(data_dir, port, log_path))

    def start(self, timeout: float = 60) -> None:
        if not (self.server.data_dir / "PG_VERSION").exists():
            self._base_backup()
        self.server.start(timeout=timeout)

    def _base_backup(self) -> None:
        # The standby authenticates as the primary's superuser (initdb's pg_hba allows replication from
        # 127.0.0.1 with scram); its password file sits beside its data like the primary's.
        password = self.primary.password_file.read_text().strip()
        self.server.data_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.primary.password_file, self.server.password_file)
        self.server.password_file.chmod(0o600)
        result = subprocess.run(
            _as_unprivileged([str(postgres_bindir() / "pg_basebackup"), "-D", str(self.server.data_dir), "-R",
                              "-X", "stream", "-c", "fast", "-h", "127.0.0.1", "-p", str(self.primary.port),
                              "-U", "postgres"]),
            env={**os.environ, "PGPASSWORD": password}, capture_output=True, text=True, check=False, timeout=300)
        if result.returncode != 0:
            raise StartError(f"postgres standby: pg_basebackup failed:\n{result.stderr[-2000:]}")

    async def promote(self) -> None:
        """Make the standby the primary (waits until it accepts writes)."""
        conn = await asyncpg.connect(self.server.admin_dsn, timeout=10)
        try:
            if not await conn.fetchval("SELECT pg_promote(wait => true, wait_seconds => 60)"):
                raise StartError("postgres standby: pg_promote() did not finish within 60 s")
        finally:
            await conn.close()

    def stop(self) -> None:
        self.server.stop()


def multi_host_dsn(dsn: str, ports: list[int]) -> str:
    """`dsn` (one host on loopback) rewritten to name every port, keeping the one that is the primary."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    userinfo = parts.netloc.rpartition("@")[0]
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    query = "&".join(filter(None, [parts.query, "target_session_attrs=read-write"]))
    return urlunsplit((parts.scheme, f"{userinfo}@{hosts}" if userinfo else hosts, parts.path, query, ""))
