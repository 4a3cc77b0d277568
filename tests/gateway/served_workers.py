"""``serve --workers N`` as the tests see it: which worker answered a connection, and
connections to each.

Which worker answered a connection is read from the kernel, not from the gateway (it
has no endpoint that says): the supervisor's children come from ``/proc/*/stat``, and
the server side of each client connection (``/proc/net/tcp``) is a socket one of them
holds open (``/proc/<pid>/fd``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.gateway.processes import running


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        fields = text.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _server_side_inode(server_port: int, client_port: int) -> int:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)) == (
            server_port,
            client_port,
        ):
            return int(fields[9])
    raise AssertionError(f"no server side for client port {client_port}")


def owner(connection: http.client.HTTPConnection, workers: set[int]) -> int:
    """The worker holding the server side of ``connection``."""
    assert connection.sock is not None
    client_port = connection.sock.getsockname()[1]
    inode = _server_side_inode(connection.port, client_port)
    (pid,) = [pid for pid in workers if inode in _socket_inodes(pid)]
    return pid


def post(
    connection: http.client.HTTPConnection,
    query: str,
    headers: Mapping[str, str] | None = None,
    **variables: Any,
) -> tuple[int, dict[str, Any]]:
    """One GraphQL POST on this keep-alive connection: the status and the JSON answer."""
    body = orjson.dumps({"query": query, "variables": variables})
    connection.request(
        "POST", "/graphql", body, {"Content-Type": "application/json", **(headers or {})}
    )
    response = connection.getresponse()
    answer: dict[str, Any] = orjson.loads(response.read())
    return response.status, answer


def graphql(connection: http.client.HTTPConnection, query: str, **variables: Any) -> dict[str, Any]:
    """One POST on this keep-alive connection, which must succeed: its data."""
    status, answer = post(connection, query, **variables)
    assert status == 200, answer
    assert "errors" not in answer, answer
    data: dict[str, Any] = answer["data"]
    return data


def get(connection: http.client.HTTPConnection, path: str) -> tuple[int, dict[str, Any]]:
    """One GET on this keep-alive connection: the status and the JSON answer."""
    connection.request("GET", path)
    response = connection.getresponse()
    answer: dict[str, Any] = orjson.loads(response.read())
    return response.status, answer


@dataclass(frozen=True)
class Served:
    host: str
    port: int
    supervisor: subprocess.Popen[str]
    workers: set[int]

    def connect(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        connection.connect()
        return connection


def per_worker(
    served: Served, workers: set[int], *, count: int = 1
) -> dict[int, list[http.client.HTTPConnection]]:
    """``count`` open connections answered by each worker: new ones until every worker
    has them (the kernel spreads them by their addresses; 64 more all on one of two
    would be 2**-63). Each has answered ``/healthz``, which needs no credential."""
    owners: dict[int, list[http.client.HTTPConnection]] = {}
    for _ in range(64 + count * len(workers)):
        connection = served.connect()
        assert get(connection, "/healthz")[0] == 200
        mine = owners.setdefault(owner(connection, workers), [])
        if len(mine) < count:
            mine.append(connection)
        else:
            connection.close()
        if len(owners) == len(workers) and all(len(c) == count for c in owners.values()):
            break
    return owners


def connection_to(served: Served, pid: int) -> http.client.HTTPConnection:
    """A new connection answered by worker ``pid`` (new ones until the kernel picks it)."""
    for _ in range(64):
        connection = served.connect()
        if owner(connection, served.workers) == pid:
            return connection
        connection.close()
    raise AssertionError(f"64 connections and none to worker {pid}")


def one_per_worker(served: Served, workers: set[int]) -> dict[int, http.client.HTTPConnection]:
    """A connection answered by each worker."""
    return {pid: connections[0] for pid, connections in per_worker(served, workers).items()}


def close_all(connections: Mapping[int, list[http.client.HTTPConnection]]) -> None:
    for mine in connections.values():
        for connection in mine:
            connection.close()


@contextlib.contextmanager
def serving_workers(
    settings: Mapping[str, str], log: Path, *, workers: int = 2
) -> Iterator[Served]:
    """``ucd-gateway serve --port 0 --workers N`` with ``settings`` until the block ends."""
    args = ["serve", "--port", "0", "--workers", str(workers)]
    with running(args, settings, log) as (url, process):
        host, port = url.removeprefix("http://").split(":")
        yield Served(host, int(port), process, children_of(process.pid))
