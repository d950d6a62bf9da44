"""Ports for the servers tests start: free, and out of the range the kernel gives clients."""

from __future__ import annotations

import socket

from deploy.local.infra import _ephemeral_low, free_port


def test_a_free_port_is_bindable_and_below_the_kernels_ephemeral_range() -> None:
    low = _ephemeral_low()
    ports = {free_port() for _ in range(30)}
    assert len(ports) > 1, "chosen at random, not the same each time"
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))
        if low > 11_000:  # an outgoing connection cannot be handed this port meanwhile
            assert 10_000 <= port < low


def test_a_port_in_use_is_never_chosen() -> None:
    taken = []
    try:
        for _ in range(200):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", free_port()))
            taken.append(s)
        in_use = {s.getsockname()[1] for s in taken}
        assert all(free_port() not in in_use for _ in range(200))
    finally:
        for s in taken:
            s.close()
