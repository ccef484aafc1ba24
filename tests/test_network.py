"""The private link between a rerun's two sandboxes: the gateway's side reaches the
inference server's side, and nothing else (not the host, not the internet)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from common.runtimes import network

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not network.available()[0], reason="needs root and iproute2")

LISTEN = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 50051))
server.listen(1)
print("listening", flush=True)
connection, _ = server.accept()
connection.sendall(b"answer")
"""

DIAL = """
import socket, sys
try:
    print(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).recv(6).decode())
except OSError as error:
    print("unreachable", type(error).__name__)
"""


@needs_root
def test_the_client_reaches_the_server_and_nothing_else():
    host = socket.socket()
    host.bind(("0.0.0.0", 0))
    host.listen(1)
    host.settimeout(5)
    accepted = []
    threading.Thread(target=lambda: accepted.append(_accept(host)), daemon=True).start()
    link = network.open_link()
    try:
        server = subprocess.Popen(["nsenter", f"--net={link.server_namespace}", sys.executable, "-c", LISTEN],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "listening"

        def dial(address: str, port: int) -> str:
            done = subprocess.run(["nsenter", f"--net={link.client_namespace}", sys.executable, "-c", DIAL, address, str(port)],
                                  capture_output=True, text=True, timeout=30)
            return done.stdout.strip()

        assert dial(link.server_address, 50051) == "answer"
        server.wait(timeout=10)
        # the host's own listener (loopback is the namespace's own), and the internet
        assert dial("127.0.0.1", host.getsockname()[1]).startswith("unreachable")
        assert dial("8.8.8.8", 53).startswith("unreachable")
    finally:
        network.close_link(link)
        host.close()
    assert not network.NETNS_DIR.joinpath(link.server).exists() and not network.NETNS_DIR.joinpath(link.client).exists()
    assert accepted in ([], [None])


def _accept(server):
    try:
        return server.accept()
    except OSError:
        return None
