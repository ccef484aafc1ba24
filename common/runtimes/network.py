"""A private link between two sandboxes, as a Kaggle rerun of a `kaggle_evaluation`
competition has one: the gateway's container reaches the notebook's inference server
at host `inference_server`, and nothing else is reachable from either.

Two network namespaces joined by one veth pair, each with its loopback and its end of
the pair, no route anywhere else (`ip netns`, `ip link` from iproute2: the kernel's own
tools for it, nothing to write by hand). The sandboxes join them instead of making an
empty network namespace of their own.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")


@dataclass
class Link:
    """Namespaces `server` and `client`, joined: `server_address` is the server's end."""

    server: str
    client: str
    server_address: str
    client_address: str

    @property
    def server_namespace(self) -> Path:
        return NETNS_DIR / self.server

    @property
    def client_namespace(self) -> Path:
        return NETNS_DIR / self.client


def available() -> tuple[bool, str]:
    if shutil.which("ip") is None:
        return False, "the ip command (iproute2) is not installed"
    return True, ""


def open_link() -> Link:
    """Make the two namespaces and the pair between them; `close_link` removes them."""
    tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
    subnet = 1 + secrets.randbelow(250)   # 10.213.X.0/30: private, and only these two ends on it
    link = Link(f"compete-s{tag}", f"compete-c{tag}", f"10.213.{subnet}.1", f"10.213.{subnet}.2")
    server_end, client_end = f"cs{tag}"[:15], f"cc{tag}"[:15]
    steps = [
        ["ip", "netns", "add", link.server],
        ["ip", "netns", "add", link.client],
        ["ip", "link", "add", server_end, "type", "veth", "peer", "name", client_end],
        ["ip", "link", "set", server_end, "netns", link.server],
        ["ip", "link", "set", client_end, "netns", link.client],
        ["ip", "-n", link.server, "addr", "add", f"{link.server_address}/30", "dev", server_end],
        ["ip", "-n", link.client, "addr", "add", f"{link.client_address}/30", "dev", client_end],
        ["ip", "-n", link.server, "link", "set", server_end, "up"],
        ["ip", "-n", link.client, "link", "set", client_end, "up"],
        ["ip", "-n", link.server, "link", "set", "lo", "up"],
        ["ip", "-n", link.client, "link", "set", "lo", "up"],
    ]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True, text=True, timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        close_link(link)
        detail = getattr(error, "stderr", "") or str(error)
        raise OSError(f"cannot make the private link between the two sandboxes ({' '.join(detail.split())})") from None
    return link


def close_link(link: Link) -> None:
    """Remove both namespaces (the pair goes with them)."""
    for name in (link.server, link.client):
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)
