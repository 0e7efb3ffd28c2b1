"""A real Redis Cluster for the tests: three masters and three replicas on local ports.

Started once per test run from ``redis-server --cluster-enabled yes`` and
``redis-cli --cluster create``, stopped at the end. Each node is a process of its
own, so a test can kill a master and watch its replica take over.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Cluster", "ClusterUnavailable"]

NODES = 6
READY_WITHIN = 30.0
"""Seconds a cluster has to start (or to fail over) before the tests give up on it."""


class ClusterUnavailable(Exception):
    """This machine cannot start a Redis Cluster (no redis-server, or it failed)."""


def _free_port() -> int:
    """A port that is free, with its cluster bus port (+10000) free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 < 65536 and _is_free(port + 10000):
            return port
    raise ClusterUnavailable("no free pair of ports for a cluster node")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=30
    )
    return done.stdout


@dataclass
class Cluster:
    """Six local nodes; :attr:`url` is botmemory's URL for them."""

    folder: Path
    ports: list[int] = field(default_factory=list)
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3]) + "/"

    def start(self) -> None:
        for tool in ("redis-server", "redis-cli"):
            if shutil.which(tool) is None:
                raise ClusterUnavailable(f"{tool} is not installed (Debian: redis-server)")
        while len(set(self.ports)) < NODES:
            self.ports = [_free_port() for _ in range(NODES)]
        try:
            self._create()
        except BaseException:
            self.stop()  # no redis-server left behind
            raise

    def _create(self) -> None:
        for port in self.ports:
            self._start_node(port)
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            raise ClusterUnavailable(
                f"redis-cli --cluster create failed: {created.stdout}{created.stderr}"
            )
        self.wait_until_ok()
        self.wait_until_replicas_synced()

    def _start_node(self, port: int) -> None:
        home = self.folder / str(port)
        home.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
                *("--cluster-enabled", "yes", "--cluster-config-file", str(home / "nodes.conf")),
                *("--cluster-node-timeout", "1000", "--dir", str(home), "--save", ""),
                *("--appendonly", "no", "--logfile", str(home / "log")),
                *("--cluster-replica-validity-factor", "0"),  # a replica always takes over
            ],
        )
        deadline = time.monotonic() + READY_WITHIN
        while _cli(port, "PING").strip() != "PONG":
            if self.processes[port].poll() is not None:
                raise ClusterUnavailable(f"redis-server on port {port} exited (see its log)")
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"redis-server on port {port} did not start")
            time.sleep(0.05)  # a real server starting: nothing to wait on but its port

    def wait_until_ok(self) -> None:
        """Wait until every live node says the cluster is ok with all slots served."""
        deadline = time.monotonic() + READY_WITHIN
        live = [p for p, proc in self.processes.items() if proc.poll() is None]
        while not all(
            "cluster_state:ok" in (info := _cli(p, "CLUSTER", "INFO"))
            and "cluster_slots_ok:16384" in info
            for p in live
        ):
            if time.monotonic() > deadline:
                raise ClusterUnavailable("the Redis Cluster did not become ready")
            time.sleep(0.1)  # the cluster's own gossip decides when it is ready

    def wait_until_replicas_synced(self) -> None:
        """Wait until every replica has its master's data (else it cannot take over)."""
        deadline = time.monotonic() + READY_WITHIN
        for port in self.ports:
            while "role:slave" in (info := _cli(port, "INFO", "replication")) and (
                "master_link_status:up" not in info
            ):
                if time.monotonic() > deadline:
                    raise ClusterUnavailable(f"the replica on port {port} did not sync")
                time.sleep(0.1)  # the replica's first sync runs on its own

    def master_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot."""
        slot = _cli(self.ports[0], "CLUSTER", "KEYSLOT", key).strip()
        for line in _cli(self.ports[0], "CLUSTER", "NODES").splitlines():
            parts = line.split()
            if "master" in parts[2] and "fail" not in parts[2]:
                for served in parts[8:]:
                    low, _, high = served.partition("-")
                    if int(low) <= int(slot) <= int(high or low):
                        return int(parts[1].split(":")[1].split("@")[0])
        raise ClusterUnavailable(f"no master serves slot {slot}")

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``."""
        self.processes[port].kill()
        self.processes[port].wait()

    def stop(self) -> None:
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        self.processes.clear()
