"""Load generator: N concurrent streaming clients, each looping requests until a deadline.

Runs in its own process (``python -m tests.load.loadgen``) so it never shares a GIL with the
gateway or the test. No Django: it imports only ``translation`` (SSE decoder, stream validator).
Every request's stream is checked event by event against the Anthropic grammar; the result is
one JSON document (``--out``) listing every request the clients sent:

    {"clients": N, "elapsed": s, "requests": [{"client", "n", "request_id", "status", "outcome",
                                                "events", "detail"}, ...]}

``outcome`` is ``complete`` (a valid stream through message_stop), ``left`` (a leaving client
closed the connection after ``--leave-after`` text deltas, as planned) or ``error`` (anything
else: status, transport, grammar, a stream that ended early, a leaver whose stream was too short).
Bounded: no client starts a request after ``--duration`` seconds, each request has a timeout,
each client sends at most ``--max-per-client`` requests and the whole run stops at
``duration + grace`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import httpx
import orjson

from translation.sse import SSEDecoder
from translation.validate import StreamValidator


def marker(client: int, n: int) -> str:
    """The text that identifies one request in the mock backend's request log."""
    return f"load-c{client}-r{n}"


def request_body(*, client: int, n: int, model: str, directive: str) -> dict[str, Any]:
    return {
        "model": model, "max_tokens": 256, "stream": True,
        "messages": [{"role": "user", "content": f"{directive} {marker(client, n)}"}],
    }


async def one_request(http: httpx.AsyncClient, *, url: str, body: dict[str, Any],
                      leave_after: int | None) -> dict[str, Any]:
    """Send one streaming request and judge it; never raises (transport failures are outcomes)."""
    result: dict[str, Any] = {"request_id": None, "status": None, "outcome": "error", "events": 0, "detail": "",
                              "first_event_s": None, "seconds": None}
    started = time.monotonic()
    try:
        return await _one_request(http, url=url, body=body, leave_after=leave_after, result=result,
                                  started=started)
    finally:
        result["seconds"] = round(time.monotonic() - started, 4)


async def _one_request(http: httpx.AsyncClient, *, url: str, body: dict[str, Any], leave_after: int | None,
                       result: dict[str, Any], started: float) -> dict[str, Any]:
    validator = StreamValidator()
    decoder = SSEDecoder()
    deltas = 0
    stopped = False
    try:
        async with http.stream("POST", url, json=body) as response:
            result["status"] = response.status_code
            result["request_id"] = response.headers.get("request-id")
            if response.status_code != 200:
                result["detail"] = (await response.aread()).decode("utf-8", "replace")[:300]
                return result
            async for raw in response.aiter_bytes():
                for sse in decoder.feed(raw):
                    event = orjson.loads(sse.data)
                    if not result["events"]:
                        result["first_event_s"] = round(time.monotonic() - started, 4)
                    result["events"] += 1
                    if validator.feed(event) is not None:
                        result["detail"] = validator.violation
                        return result
                    deltas += event["type"] == "content_block_delta"
                    stopped = stopped or event["type"] == "message_stop"
                if leave_after is not None and deltas >= leave_after and not stopped:
                    # Leaving the `async with` closes the connection: the stream is not finished.
                    result["outcome"] = "left"
                    return result
    except (httpx.HTTPError, OSError) as exc:
        result["detail"] = f"{type(exc).__name__}: {exc}"
        return result
    if leave_after is not None:
        result["detail"] = f"the stream ended before {leave_after} deltas: nothing to leave"
    elif (problem := validator.finish()) is not None:
        result["detail"] = problem
    else:
        result["outcome"] = "complete"
    return result


async def client_loop(http: httpx.AsyncClient, *, client: int, args: argparse.Namespace, deadline: float,
                      out: list[dict[str, Any]]) -> None:
    leaving = args.leave_every > 0 and client % args.leave_every == 0
    directive = args.leave_directive if leaving else args.directive
    n = 0
    while time.monotonic() < deadline and n < args.max_per_client:
        body = request_body(client=client, n=n, model=args.model, directive=directive)
        result = await one_request(http, url=args.url + "/v1/messages", body=body,
                                   leave_after=args.leave_after if leaving else None)
        out.append({"client": client, "n": n, "leaving": leaving, **result})
        n += 1
        if result["outcome"] == "error" and result["status"] is None:
            await asyncio.sleep(0.1)  # a transport failure: do not spin


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    timeout = httpx.Timeout(args.request_timeout)
    started = time.monotonic()
    deadline = started + args.duration
    headers = {"x-api-key": args.key, "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(limits=limits, timeout=timeout, headers=headers) as http:
        tasks = [asyncio.create_task(client_loop(http, client=i, args=args, deadline=deadline, out=out))
                 for i in range(args.clients)]
        done, pending = await asyncio.wait(tasks, timeout=args.duration + args.grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    return {"clients": args.clients, "elapsed": time.monotonic() - started, "unfinished_clients": len(pending),
            "requests": out}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the gateway's origin, e.g. http://127.0.0.1:8000")
    parser.add_argument("--key", required=True)
    parser.add_argument("--model", default="load-model")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds during which requests start")
    parser.add_argument("--grace", type=float, default=60.0, help="extra seconds for the last requests")
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--max-per-client", type=int, default=100_000)
    parser.add_argument("--directive", default="[[mock:bench events=20 delay_ms=20]]",
                        help="the mock scenario of the staying clients")
    parser.add_argument("--leave-every", type=int, default=0, help="every k-th client leaves mid-stream (0: none)")
    parser.add_argument("--leave-after", type=int, default=3, help="text deltas a leaving client reads")
    parser.add_argument("--leave-directive", default="[[mock:bench events=200 delay_ms=20]]",
                        help="the mock scenario of the leaving clients (long enough to leave in the middle)")
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    with open(args.out, "wb") as f:
        f.write(orjson.dumps(result))
    outcomes: dict[str, int] = {}
    for r in result["requests"]:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    print(f"loadgen: {len(result['requests'])} requests in {result['elapsed']:.1f}s: {outcomes}; "
          f"{latency_summary(result['requests'])}", file=sys.stderr)


def latency_summary(requests: list[dict[str, Any]]) -> str:
    def pct(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    first = [r["first_event_s"] for r in requests if r["first_event_s"] is not None]
    whole = [r["seconds"] for r in requests if r["outcome"] == "complete"]
    return (f"first event p50 {pct(first, 0.5):.3f}s p99 {pct(first, 0.99):.3f}s; "
            f"complete stream p50 {pct(whole, 0.5):.3f}s p99 {pct(whole, 0.99):.3f}s")


if __name__ == "__main__":
    main()
