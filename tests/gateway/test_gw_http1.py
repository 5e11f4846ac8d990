"""The gateway's own HTTP/1.1 layer (server and upstream pool), over real sockets."""

from __future__ import annotations

import asyncio
import json

from scheduler.gateway.http1 import HTTPRequest, Server
from scheduler.gateway.upstream import Pool, UpstreamUnavailable


async def _echo_server(**kw) -> tuple[Server, int]:
    async def handler(req: HTTPRequest) -> None:
        if req.path == "/slow":
            await asyncio.sleep(0.05)
        req.conn.respond(413 if req.too_large else 200,
                         json.dumps({"path": req.path, "n": len(req.body)}).encode())

    server = Server(handler, max_body=100, **kw)
    port = await server.start("127.0.0.1", 0)
    return server, port


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict]:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) != b"\r\n":
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, json.loads(await reader.readexactly(length))


async def test_pipelined_requests_are_answered_in_order():
    server, port = await _echo_server()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                     b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await _read_answer(reader) == (200, {"path": "/slow", "n": 3})
        assert await _read_answer(reader) == (200, {"path": "/fast", "n": 0})
        writer.close()
    finally:
        await server.close()


async def test_chunked_body_over_the_cap_is_read_and_refused_and_the_connection_lives():
    server, port = await _echo_server()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        chunks = b"".join(b"32\r\n" + b"x" * 50 + b"\r\n" for _ in range(5))  # 250 > 100
        writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + chunks + b"0\r\n\r\n")
        assert (await _read_answer(reader))[0] == 413
        writer.write(b"POST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
        assert await _read_answer(reader) == (200, {"path": "/next", "n": 2})
        writer.close()
    finally:
        await server.close()


async def test_malformed_http_is_a_400_json_and_the_connection_closes():
    server, port = await _echo_server()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        status, body = await _read_answer(reader)
        assert status == 400 and body["error"]["code"] == "invalid_http"
        assert await reader.read() == b""  # closed
    finally:
        await server.close()


async def test_idle_connections_are_closed_after_the_keepalive():
    server, port = await _echo_server(keepalive_s=0.2)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await _read_answer(reader))[0] == 200
        assert await asyncio.wait_for(reader.read(), 2.0) == b""  # the gateway hung up
        assert not server.conns
    finally:
        await server.close()


async def test_pool_reuses_one_connection_and_reports_a_dead_engine():
    accepted = 0

    async def engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n3\r\n{}\n\r\n0\r\n\r\n")

    srv = await asyncio.start_server(engine, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    pool = Pool(connect_timeout_s=1.0, read_timeout_s=5.0, keepalive_s=4.0)
    try:
        for _ in range(3):
            up = await pool.post(url, "/v1/embeddings", b"")
            await up.head()
            assert (up.status, up.content_type, await up.read()) == (200, "application/json",
                                                                     b"{}\n")
            up.release()
        assert accepted == 1
        srv.close()
        await srv.wait_closed()
        pool.close()
        try:
            await pool.post(url, "/v1/embeddings", b"")
        except UpstreamUnavailable:
            pass
        else:
            raise AssertionError("a closed port must be UpstreamUnavailable")
    finally:
        pool.close()
        srv.close()


async def test_head_answers_without_a_body_and_oversized_headers_are_a_400():
    server, port = await _echo_server()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        while await reader.readline() != b"\r\n":
            pass
        # no body for the HEAD: the next bytes are the next answer's status line
        assert await _read_answer(reader) == (200, {"path": "/after", "n": 0})
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"p" * 70_000 + b"\r\n\r\n")
        status, body = await _read_answer(reader)
        assert status == 400 and body["error"]["code"] == "invalid_http"
        writer.close()
    finally:
        await server.close()
