"""Operator commands: `python -m notifier_service jobs list|retry` (see and re-queue failed email jobs).

Reads only DATABASE_URL: an operator inspecting the queue needs no SMTP or signing secrets.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys

import asyncpg

from notifier_service.config import SERVICE
from notifier_service.repository import jobs as jobs_repo

STATUSES = ("queued", "sent", "failed", "expired")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m notifier_service",
                                   description="Without arguments: run the notifier service.")
    commands = root.add_subparsers(dest="command", required=True)
    jobs = commands.add_parser("jobs", help="inspect and retry email jobs").add_subparsers(dest="action", required=True)
    listing = jobs.add_parser("list", help="show email jobs, newest first")
    listing.add_argument("--status", choices=[*STATUSES, "all"], default="failed")
    listing.add_argument("--limit", type=int, default=50)
    retry = jobs.add_parser("retry", help="queue failed jobs again (a sent job is never sent again)")
    target = retry.add_mutually_exclusive_group(required=True)
    target.add_argument("--id", help="the job id (= the event id)")
    target.add_argument("--all-failed", action="store_true")
    return root


async def run(args: argparse.Namespace, database_url: str) -> int:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SERVICE})
    try:
        if args.action == "list":
            rows = await jobs_repo.list_jobs(conn, status=None if args.status == "all" else args.status,
                                              limit=args.limit)
            print_jobs(rows)
            return 0
        ids, link_lost = await jobs_repo.retry_failed(conn, job_id=None if args.all_failed else args.id)
        for job_id in link_lost:
            # Its one-time link was scrubbed when it failed: only a new reset or invitation can replace it.
            print(f"job {job_id} carried a reset or invitation link that is no longer kept: ask for a new "
                  "reset, or send a new invitation", file=sys.stderr)
        if args.id and not ids:
            if not link_lost:
                print(f"job {args.id} is not failed (or does not exist): nothing to retry", file=sys.stderr)
            return 1
        print(f"queued again: {len(ids)} job(s)")
        for job_id in ids:
            print(f"  {job_id}")
        return 0
    finally:
        await conn.close()


def print_jobs(rows: list[asyncpg.Record]) -> None:
    if not rows:
        print("no jobs")
        return
    print(f"{'id':36}  {'type':32}  {'status':7}  {'tries':>5}  {'recipient':30}  {'created (UTC)':19}  last error")
    for row in rows:
        created = row["created_at"].strftime("%Y-%m-%d %H:%M:%S")
        print(f"{row['id']:36}  {row['type']:32}  {row['status']:7}  {row['attempts']:>5}  "
              f"{(row['recipient'] or '-')[:30]:30}  {created:19}  {row['last_error'] or ''}")


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    # An address may be internationalised: never let a terminal without UTF-8 turn a listing into a crash.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    database_url = os.environ.get("DATABASE_URL", "").strip()
    if not database_url:
        print("notifier-service: required setting DATABASE_URL is not set", file=sys.stderr)
        return 2
    return asyncio.run(run(args, database_url))
