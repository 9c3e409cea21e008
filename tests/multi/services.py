"""Throwaway PostgreSQL and Redis servers for the many-instances tests, on free loopback ports.

Both are the Debian packages (``make test-multi`` installs ``postgresql`` and ``redis-server``
when they are missing and it runs as root). PostgreSQL gets a fresh cluster in a temporary
folder (``initdb``, trust auth, fsync off: nothing here must survive), Redis runs without
persistence. Both stop and their files go when the block ends.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.e2e.conftest import free_port


class ServiceMissing(RuntimeError):
    pass


def postgres_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not found:
        raise ServiceMissing("PostgreSQL is not installed (Debian package postgresql; make test-multi installs it)")
    return os.path.dirname(found[-1])


def redis_bin() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise ServiceMissing("redis-server is not installed (Debian package redis-server; make test-multi "
                             "installs it)")
    return found


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as the package's postgres user."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextmanager
def postgres_server() -> Iterator[str]:
    """A fresh PostgreSQL cluster; yields a DATABASE_URL for a database ``dragoman`` owned by role
    ``dragoman``, which may also create databases."""
    pgbin = postgres_bin()
    data = tempfile.mkdtemp(prefix="dragoman-multi-pg.")
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    subprocess.run(_as_postgres([f"{pgbin}/initdb", "-D", data, "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(_as_postgres([f"{pgbin}/pg_ctl", "-D", data, "-o", options, "-l", f"{data}/log", "-w",
                                 "start"]), check=True, capture_output=True, timeout=60)
    try:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE ROLE dragoman LOGIN CREATEDB PASSWORD 'dragoman'")
            conn.execute("CREATE DATABASE dragoman OWNER dragoman")
        yield f"postgres://dragoman:dragoman@127.0.0.1:{port}/dragoman"
    finally:
        subprocess.run(_as_postgres([f"{pgbin}/pg_ctl", "-D", data, "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(data, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[str]:
    """redis-server on a free port, no persistence; yields its REDIS_URL."""
    port = free_port()
    folder = tempfile.mkdtemp(prefix="dragoman-multi-redis.")
    proc = subprocess.Popen([redis_bin(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", folder, "--logfile", f"{folder}/log"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis.from_url(url, socket_timeout=1).ping():
                    break
            except redis.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start (exit {proc.poll()})")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(folder, ignore_errors=True)
