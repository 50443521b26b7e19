"""A real ``sparkfs serve`` process against slow, huge and idle clients (raw sockets):
bodies refused while they stream, request heads and bodies that do not arrive in time,
a connection limit that answers at once, idle connections reaped, and the start-up
warning when listening beyond loopback without authentication."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from test_serving import _free_port, _start, _stop, _wait_healthy

LIMIT_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guard")
    conf = tmp / "conf.yaml"
    conf.write_text(f"data_dir: {tmp / 'data'}\nserving: {{max_body_bytes: {LIMIT_BYTES}, "
                    "header_timeout_s: 1, body_timeout_s: 1, keep_alive_s: 1, "
                    "max_connections: 8}\n")
    port = _free_port()
    log = str(tmp / "server.log")
    proc = _start(["serve", "--config", str(conf), "--port", str(port), "--host", "0.0.0.0",
                   "--workers", "1"], log)
    base = f"http://127.0.0.1:{port}"
    _wait_healthy(base, proc, log)
    yield {"port": port, "base": base, "log": log}
    _stop(proc)


def _connect(server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server["port"]), timeout=10)
    return s


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    try:
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def test_listening_beyond_loopback_without_auth_warns(server):
    assert "without authentication" in open(server["log"]).read()


def test_a_streamed_body_over_the_limit_is_refused_before_it_ends(server):
    s = _connect(server)
    s.sendall(b"POST /features HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
              b"transfer-encoding: chunked\r\n\r\n")
    chunk = b"[" + b"1," * 8000
    sent = 0
    try:
        while sent < 4 * LIMIT_BYTES:                 # never finishes the body
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = _read_all(s)
    s.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"serving.max_body_bytes=65536" in reply


def test_a_declared_length_over_the_limit_is_refused_unread(server):
    s = _connect(server)
    s.sendall(b"POST /features HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
              b"content-length: 100000000\r\n\r\n")
    reply = _read_all(s)
    s.close()
    assert reply.startswith(b"HTTP/1.1 413") and b"100000000 bytes" in reply


def test_a_body_that_does_not_arrive_in_time_is_408(server):
    s = _connect(server)
    s.sendall(b"POST /features HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
              b"content-length: 100\r\n\r\n{\"features\":")
    reply = _read_all(s)
    s.close()
    assert reply.startswith(b"HTTP/1.1 408") and b"body_timeout_s=1" in reply


def test_a_request_head_that_does_not_arrive_in_time_is_closed(server):
    s = _connect(server)
    s.sendall(b"POST /features HTTP/1.1\r\nhost: x\r\n")  # never ends the head
    reply = _read_all(s)
    s.close()
    assert reply.startswith(b"HTTP/1.1 408")
    idle = _connect(server)                               # sends nothing at all
    assert _read_all(idle).startswith(b"HTTP/1.1 408")
    idle.close()


def test_connections_over_the_limit_get_503_and_idle_ones_are_reaped(server):
    held = [_connect(server) for _ in range(8)]
    time.sleep(0.2)
    extra = [_connect(server) for _ in range(4)]
    replies = [_read_all(s) for s in extra]
    assert all(r.startswith(b"HTTP/1.1 503") and b"max_connections" in r for r in replies)
    for s in held:                                        # the idle ones are closed for us
        assert _read_all(s).startswith(b"HTTP/1.1 408")
        s.close()
    for s in extra:
        s.close()
    assert httpx.get(server["base"] + "/health", timeout=10).status_code == 200
