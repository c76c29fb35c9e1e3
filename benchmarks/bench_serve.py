"""`embedrt serve` on loopback against in-process `Encoder.encode`.

Starts `embedrt serve` as a subprocess on a free loopback port, then measures:
  * throughput of 16 concurrent clients, each sending one short text per request, against
    in-process `encode` over the same texts in batches of 32 (the ratio shows dynamic batching),
    measured before the server starts and again after it stops (the ratio takes their mean);
  * at concurrency 1, the median latency of a 12-token request against in-process single-text
    `encode`;
  * p50 / p99 latency at concurrency 1, 16 and 64;
  * the server's peak RSS (VmHWM) under that load.
Prints a markdown table. The load generator shares the machine's cores with the server: by
default wrk (a C load generator, one thread) when it is on PATH, else a minimal keep-alive
HTTP/1.1 client on asyncio, which costs several times more CPU per request (``--client``
chooses).

    python benchmarks/bench_serve.py [--model DIR] [--seconds 5] [--threads N] [--client wrk|python]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"


def _inproc_tps(enc, texts: list, seconds: float) -> float:
    """In-process `encode` throughput over `texts` in batches of 32 (texts/s)."""
    enc.encode(texts[:64], batch_size=32)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        enc.encode(texts[:1024], batch_size=32)
        done += 1024
    return done / (time.perf_counter() - t0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Conn:
    """One keep-alive HTTP/1.1 connection (just enough of the protocol for this server)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port):
        return cls(*await asyncio.open_connection(HOST, port))

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple:
        head = (f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        data = await self.reader.readexactly(length) if length else b""
        return status, data

    def close(self):
        self.writer.close()


async def _load(port: int, clients: int, seconds: float, texts: list) -> dict:
    latencies = []
    errors = 0
    counter = [0]
    bodies = [json.dumps({"input": t}).encode() for t in texts]

    async def client(cid):
        nonlocal errors
        conn = await Conn.open(port)
        stop = time.perf_counter() + seconds
        try:
            while time.perf_counter() < stop:
                i = counter[0] = counter[0] + 1
                t0 = time.perf_counter()
                status, _ = await conn.request("POST", "/v1/embeddings", bodies[i % len(bodies)])
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    errors += 1
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    wall = time.perf_counter() - t0
    latencies.sort()
    return {"requests": len(latencies), "rps": len(latencies) / wall, "errors": errors,
            "p50": latencies[len(latencies) // 2] * 1e3,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3}


_WRK_SCRIPT = r"""
local bodies = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
request = function()
  i = i + 1
  return wrk.format("POST", "/v1/embeddings", {["Content-Type"] = "application/json"},
                    bodies[(i % #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
           e.connect + e.read + e.write + e.timeout, e.status,
           latency:percentile(50), latency:percentile(99)))
end
"""


def _load_wrk(port: int, clients: int, seconds: float, texts: list) -> dict:
    """The same load from wrk: `clients` keep-alive connections, one request in flight on each."""
    with tempfile.TemporaryDirectory() as tmp:
        script, bodies = Path(tmp) / "post.lua", Path(tmp) / "bodies.txt"
        script.write_text(_WRK_SCRIPT)
        bodies.write_text("\n".join(json.dumps({"input": t}) for t in texts) + "\n")
        out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
                              "-s", str(script), f"http://{HOST}:{port}/v1/embeddings", "--", str(bodies)],
                             capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    requests, duration_us, errors, bad_status, p50, p99 = (int(x) for x in line.split()[1:])
    return {"requests": requests, "rps": requests / (duration_us / 1e6), "errors": errors + bad_status,
            "p50": p50 / 1e3, "p99": p99 / 1e3}


def _rss_peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _texts(enc, n: int) -> list:
    words = ("search", "index", "vector", "embedding", "server", "batch", "token", "model", "query",
             "document", "latency", "throughput", "memory", "cache", "thread", "kernel")
    out = []
    for i in range(n):
        w = [words[(i * 7 + k * 3) % len(words)] for k in range(8)]
        out.append(f"request {i} asks about the {' '.join(w)}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="exported model folder (default: the default model)")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each phase (default 5)")
    ap.add_argument("--threads", type=int, help="inference threads, server and in-process (default: all)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--workers", type=int, help="the server's --workers (default: its own)")
    ap.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                    help="load generator (default: wrk when it is on PATH, else the asyncio client)")
    args = ap.parse_args(argv)
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    elif client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--client wrk: wrk is not on PATH (Debian/Ubuntu: apt install wrk)")

    def load(port, clients, seconds, texts):
        if client == "wrk":
            return _load_wrk(port, clients, seconds, texts)
        return asyncio.run(_load(port, clients, seconds, texts))

    import numpy as np  # noqa: F401

    import embedrt

    enc = embedrt.Encoder(args.model, backend=args.backend, threads=args.threads)
    texts = _texts(enc, 4096)
    lengths = [len(x) for x in enc.tokenize(texts[:64])]
    query = next((t for t in texts if len(enc.tokenize([t])[0]) == 12), texts[0])
    query_tokens = len(enc.tokenize([query])[0])

    # in-process: batches of 32 over the same texts, and single-text latency
    inproc_before = _inproc_tps(enc, texts, args.seconds)
    single = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < min(args.seconds, 3.0):
        s = time.perf_counter()
        enc.encode(query)
        single.append(time.perf_counter() - s)
    inproc_single = statistics.median(single) * 1e3
    model_dir = str(enc.path)
    backend_name = enc.backend_name
    del enc

    port = _free_port()
    cmd = [sys.executable, "-m", "embedrt.cli", "serve", "--model", model_dir, "--host", HOST,
           "--port", str(port), "--backend", args.backend]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        async def wait_ready():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise SystemExit(f"the server exited: {proc.stderr.read().decode()}")
                try:
                    conn = await Conn.open(port)
                    status, _ = await conn.request("GET", "/health")
                    conn.close()
                    if status == 200:
                        return
                except OSError:
                    pass
                await asyncio.sleep(0.1)
            raise SystemExit("the server did not start")

        asyncio.run(wait_ready())
        load(port, 16, 1.0, texts)                                  # warm up
        results = {}
        for clients in (16, 1, 64):
            phase_texts = [query] if clients == 1 else texts
            results[clients] = load(port, clients, args.seconds, phase_texts)
        rss = _rss_peak_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    # the in-process figure again, after the server: the machine's speed drifts between phases,
    # so the ratio is taken against the mean of the two
    inproc_after = _inproc_tps(embedrt.Encoder(model_dir, backend=args.backend, threads=args.threads),
                               texts, args.seconds)
    inproc_tps = (inproc_before + inproc_after) / 2

    c16, c1, c64 = results[16], results[1], results[64]
    cpu = "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")
    except OSError:
        pass
    print(f"model {Path(model_dir).name} ({backend_name}), {os.cpu_count()} cores ({cpu}), "
          f"texts of {min(lengths)}-{max(lengths)} tokens, {args.seconds:g} s per phase, "
          f"load from {'wrk (1 thread)' if client == 'wrk' else 'the asyncio client'}, "
          f"server exit code {proc.returncode}")
    print()
    print("| measurement | server | in-process encode | ratio / target |")
    print("|---|---|---|---|")
    ratio = c16["rps"] / inproc_tps
    print(f"| 16 clients, one short text per request | {c16['rps']:.0f} texts/s | "
          f"{inproc_tps:.0f} texts/s (batches of 32; {inproc_before:.0f} before the server, "
          f"{inproc_after:.0f} after) | {ratio:.2f}x (target >= 0.8x) |")
    extra = c1["p50"] - inproc_single
    print(f"| concurrency 1, {query_tokens}-token request, median | {c1['p50']:.2f} ms | "
          f"{inproc_single:.2f} ms (single text) | +{extra:.2f} ms (target <= +1.5 ms) |")
    for clients, r in ((1, c1), (16, c16), (64, c64)):
        print(f"| concurrency {clients}: p50 / p99 | {r['p50']:.2f} / {r['p99']:.2f} ms | "
              f"{r['rps']:.0f} req/s | {r['errors']} errors |")
    print(f"| server peak RSS under load | {rss:.0f} MB | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
