"""Hosts on one machine: Linux network namespaces joined by veth pairs to a bridge.

Each ``Host`` is a network namespace with its own address on a private /24;
the test process itself stays in the root namespace, which owns the bridge
and the first address (the "operator" host). Cutting a host's link is
``ip link set eth0 down`` inside its namespace, as a pulled cable would be
seen from that host: its TCP connections stall, new ones fail.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import dataclass


class NetworkUnavailable(RuntimeError):
    """This machine cannot create namespaces (not root, no iproute2, no permission)."""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"igprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"`ip netns add` failed: {exc.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@dataclass
class Host:
    name: str          # namespace name, also the host's label in the test
    address: str       # its IPv4 address on the bridge
    netns: str

    def command(self, args: list[str]) -> list[str]:
        """``args`` run inside this host's namespace (the process keeps its pid)."""
        return ["ip", "netns", "exec", self.netns, *args]

    def cut(self) -> None:
        _ip("-n", self.netns, "link", "set", "eth0", "down")

    def restore(self) -> None:
        _ip("-n", self.netns, "link", "set", "eth0", "up")


class Network:
    """A bridge in the root namespace and one namespace per host, torn down by ``close``."""

    def __init__(self) -> None:
        tag = f"ig{os.getpid() % 100000}"
        self.tag = tag
        self.bridge = f"{tag}br"
        self.prefix = f"10.{random.randint(100, 199)}.{random.randint(1, 250)}"
        self.address = f"{self.prefix}.1"  # the test process's own address
        self.hosts: list[Host] = []
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_host(self, label: str) -> Host:
        index = len(self.hosts) + 2
        host = Host(label, f"{self.prefix}.{index}", f"{self.tag}{label}")
        outer = f"{self.tag}v{index}"
        _ip("netns", "add", host.netns)
        _ip("link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("link", "set", outer, "master", self.bridge, "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "lo", "up")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        self.hosts.append(host)
        return host

    def close(self) -> None:
        """Kill whatever still runs in the namespaces, then remove them and the bridge."""
        for host in self.hosts:
            pids = subprocess.run(["ip", "netns", "pids", host.netns], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
