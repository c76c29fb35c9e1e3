"""embedrt serve: the OpenAI-compatible app (in-process through httpx's ASGI transport, and live
uvicorn on loopback), its batcher, its errors, a bounded load test and a SIGTERM drain."""
from __future__ import annotations

import asyncio
import base64
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import subprocess_env

_MISSING = [m for m in ("starlette", "uvicorn", "httpx") if __import__("importlib").util.find_spec(m) is None]
if _MISSING:
    pytest.skip(f"the server tests need {', '.join(_MISSING)} (pip install '.[test]' or '.[serve]' httpx)",
                allow_module_level=True)

import httpx  # noqa: E402

import embedrt  # noqa: E402
from embedrt.serve import create_app  # noqa: E402
from embedrt.serve.batcher import Batcher, QueueFull  # noqa: E402

TINY = Path(__file__).resolve().parent / "data" / "export_corpus" / "tiny-bert"
LOOPBACK = "127.0.0.1"


# ----------------------------------------------------------------------------- fixtures, helpers
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A copy of the committed tiny model (loading may write a converted engine beside it)."""
    dst = tmp_path_factory.mktemp("serve") / "tiny-bert"
    shutil.copytree(TINY, dst)
    return dst


@pytest.fixture(scope="module")
def encoder(tiny_dir):
    return embedrt.Encoder(tiny_dir, threads=1)


def run_app(app, body, **client_kw):
    """Runs `await body(client)` against `app` in-process, inside the app's lifespan."""
    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", **client_kw) as client:
                return await body(client)
    return asyncio.run(main())


def call(app, method, path, **kw):
    async def body(client):
        return await client.request(method, path, **kw)
    return run_app(app, body)


def rows(response) -> np.ndarray:
    data = response.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    return np.array([d["embedding"] for d in data], dtype=np.float64)


def assert_error(response, status, code=None, param=None):
    assert response.status_code == status, response.text
    err = response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    if code is not None:
        assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    return err


class GatedEncoder:
    """Wraps an Encoder: encode() waits for `gate` (so tests can hold the worker busy) and
    records the texts it was given."""

    def __init__(self, encoder):
        self._enc = encoder
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.seen = []
        self._texts = {}

    def __getattr__(self, name):
        return getattr(self._enc, name)

    def encode(self, texts, **kw):
        self._hold(texts)
        return self._enc.encode(texts, **kw)

    def tokenize(self, texts):
        ids = self._enc.tokenize(texts)
        self._texts.update((tuple(x.tolist()), t) for x, t in zip(ids, texts))
        return ids

    def encode_tokens(self, ids, **kw):  # the server encodes the ids it tokenized
        self._hold([self._texts[tuple(x.tolist())] for x in ids])
        return self._enc.encode_tokens(ids, **kw)

    def _hold(self, texts):
        self.seen.extend(texts)
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"


# ----------------------------------------------------------------------------- response shapes
def test_embeddings_shape_and_agreement(encoder):
    texts = ["The cat sat on the mat.", "A feline rested on the rug.", "embedrt serves embeddings"]
    r = call(create_app(encoder=encoder), "POST", "/v1/embeddings",
             json={"input": texts, "model": "tiny-bert", "user": "someone"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert body["object"] == "list" and body["model"] == "tiny-bert"
    assert all(d["object"] == "embedding" and set(d) == {"object", "index", "embedding"} for d in body["data"])
    got = rows(r)
    assert got.shape == (3, encoder.dim)
    np.testing.assert_allclose(got, encoder.encode(texts), atol=1e-5, rtol=0)
    tokens = sum(len(x) for x in encoder.tokenize(texts))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert r.headers["x-embedrt-truncated"] == "0"


def test_single_string_and_base64(encoder):
    app = create_app(encoder=encoder)

    async def body(client):
        f = await client.post("/v1/embeddings", json={"input": "hello world", "model": "default"})
        b = await client.post("/v1/embeddings", json={"input": "hello world", "encoding_format": "base64"})
        return f, b
    f, b = run_app(app, body)
    assert f.status_code == 200 and b.status_code == 200
    assert len(f.json()["data"]) == 1
    raw = base64.b64decode(b.json()["data"][0]["embedding"])
    decoded = np.frombuffer(raw, dtype="<f4")
    assert decoded.shape == (encoder.dim,)
    np.testing.assert_allclose(decoded, rows(f)[0], atol=1e-6, rtol=0)
    np.testing.assert_allclose(decoded, encoder.encode("hello world"), atol=1e-5, rtol=0)


def test_dimensions_matryoshka(encoder):
    app = create_app(encoder=encoder)
    texts = ["one text", "and another, a bit longer"]

    async def body(client):
        ok = await client.post("/v1/embeddings", json={"input": texts, "dimensions": 8})
        full = await client.post("/v1/embeddings", json={"input": texts, "dimensions": encoder.dim})
        big = await client.post("/v1/embeddings", json={"input": texts, "dimensions": encoder.dim + 1})
        zero = await client.post("/v1/embeddings", json={"input": texts, "dimensions": 0})
        word = await client.post("/v1/embeddings", json={"input": texts, "dimensions": "8"})
        return ok, full, big, zero, word
    ok, full, big, zero, word = run_app(app, body)
    got = rows(ok)
    assert got.shape == (2, 8)
    np.testing.assert_allclose(got, encoder.encode(texts, truncate_dim=8), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(rows(full), encoder.encode(texts), atol=1e-5, rtol=0)
    assert_error(big, 400, param="dimensions")
    assert_error(zero, 400, param="dimensions")
    assert_error(word, 400, param="dimensions")


def test_model_names(encoder):
    app = create_app(encoder=encoder)

    async def body(client):
        out = {}
        names = ("tiny-bert", "default", "TINY-BERT", "some-org/tiny-bert", None, "gpt-4", "text-embedding-3-small")
        for name in names:
            payload = {"input": "x"} if name is None else {"input": "x", "model": name}
            out[name] = await client.post("/v1/embeddings", json=payload)
        out["models"] = await client.get("/v1/models")
        out["model"] = await client.get("/v1/models/tiny-bert")
        out["nomodel"] = await client.get("/v1/models/nope")
        return out
    out = run_app(app, body)
    for name in ("tiny-bert", "default", "TINY-BERT", "some-org/tiny-bert", None):
        assert out[name].status_code == 200, (name, out[name].text)
    for name in ("gpt-4", "text-embedding-3-small"):
        err = assert_error(out[name], 404, code="model_not_found", param="model")
        assert "tiny-bert" in err["message"]
    models = out["models"].json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["tiny-bert"]
    assert models["data"][0]["object"] == "model"
    assert out["model"].json()["id"] == "tiny-bert"
    assert_error(out["nomodel"], 404, code="model_not_found")
    # a chosen name, and the config's _name_or_path as an alias
    named = create_app(encoder=encoder, model_name="my-embedder")
    got = call(named, "POST", "/v1/embeddings", json={"input": "x", "model": "my-embedder"})
    assert got.json()["model"] == "my-embedder"
    assert call(named, "POST", "/v1/embeddings", json={"input": "x", "model": "tiny-bert"}).status_code == 200


def test_minilm_agreement(minilm_dir):
    enc = embedrt.Encoder(minilm_dir)
    texts = ["How do I bake bread?", "The quick brown fox jumps over the lazy dog.", "embedding servers"]
    r = call(create_app(encoder=enc), "POST", "/v1/embeddings",
             json={"input": texts, "model": "all-MiniLM-L6-v2"})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(rows(r), enc.encode(texts), atol=1e-5, rtol=0)
    # the config's _name_or_path is an alias
    origin = enc.folder.config.get("_name_or_path")
    if origin:
        assert call(create_app(encoder=enc), "POST", "/v1/embeddings",
                    json={"input": "x", "model": origin}).status_code == 200


def test_tei_embed(encoder):
    app = create_app(encoder=encoder)
    texts = ["first", "second text"]
    long = "word " * 200

    async def body(client):
        return (await client.post("/embed", json={"inputs": texts}),
                await client.post("/embed", json={"inputs": "first", "normalize": False}),
                await client.post("/embed", json={"inputs": [long]}),
                await client.post("/embed", json={"inputs": [long], "truncate": True}),
                await client.post("/embed", json={"inputs": []}))
    ok, raw, too_long, truncated, empty = run_app(app, body)
    assert ok.status_code == 200
    np.testing.assert_allclose(np.array(ok.json()), encoder.encode(texts), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.array(raw.json()), encoder.encode(["first"], normalize_embeddings=False),
                               atol=1e-5, rtol=0)
    assert too_long.status_code == 413 and "error" in too_long.json()
    assert truncated.status_code == 200 and truncated.headers["x-embedrt-truncated"] == "1"
    assert empty.status_code == 400


# ----------------------------------------------------------------------------- errors and limits
@pytest.mark.parametrize("content, code", [
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "invalid_type"),
    (b'{"model": "tiny-bert"}', "missing_required_parameter"),
    (b'{"input": []}', "empty_input"),
    (b'{"input": ""}', "empty_input"),
    (b'{"input": ["a", ""]}', "empty_input"),
    (b'{"input": [101, 2023, 102]}', "token_ids_unsupported"),
    (b'{"input": [[101, 2023, 102]]}', "token_ids_unsupported"),
    (b'{"input": 42}', "invalid_type"),
    (b'{"input": {"text": "a"}}', "invalid_type"),
    (b'{"input": ["a", null]}', "invalid_type"),
    (b'{"input": "a", "encoding_format": "int8"}', "invalid_value"),
    (b'{"input": "a", "model": 3}', "invalid_type"),
    (b'{"input": "\\ud800"}', "invalid_value"),
])
def test_bad_requests(encoder, content, code):
    r = call(create_app(encoder=encoder), "POST", "/v1/embeddings", content=content,
             headers={"content-type": "application/json"})
    err = assert_error(r, 400, code=code)
    assert err["type"] == "invalid_request_error"


def test_too_many_inputs(encoder):
    r = call(create_app(encoder=encoder), "POST", "/v1/embeddings", json={"input": ["a"] * 2049})
    assert_error(r, 413, code="too_many_inputs", param="input")
    r = call(create_app(encoder=encoder), "POST", "/v1/embeddings", json={"input": ["a"] * 2048})
    assert r.status_code == 200 and len(r.json()["data"]) == 2048


def test_truncation_header(encoder):
    texts = ["short", "word " * 200, "x " * 61, "y " * 62]   # 63 and 64 tokens: the second is at the limit
    r = call(create_app(encoder=encoder), "POST", "/v1/embeddings", json={"input": texts})
    assert r.status_code == 200
    assert r.headers["x-embedrt-truncated"] == "1"
    assert r.json()["usage"]["prompt_tokens"] == sum(len(x) for x in encoder.tokenize(texts))
    np.testing.assert_allclose(rows(r), encoder.encode(texts), atol=1e-5, rtol=0)


def test_default_prompt_through_the_server(tiny_dir, tmp_path):
    """A model whose sentence-transformers config adds a default prompt: the server's rows are
    encode's (prompt included) and usage counts the texts' own tokens."""
    import json

    folder = tmp_path / "prompted"
    shutil.copytree(tiny_dir, folder)
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": {"query": "query: "}, "default_prompt_name": "query"}))
    enc = embedrt.Encoder(folder, threads=1)
    assert enc.default_prompt_name == "query"
    texts = ["what is a cat", "the cat sat on the mat"]
    r = call(create_app(encoder=enc), "POST", "/v1/embeddings", json={"input": texts})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(rows(r), enc.encode(texts), atol=1e-5, rtol=0)
    without = enc.encode_tokens(enc.tokenize(texts))
    assert np.abs(rows(r) - without).max() > 1e-3          # the prompt is in the rows
    assert r.json()["usage"]["prompt_tokens"] == sum(len(x) for x in enc.tokenize(texts))


def test_api_key(encoder):
    app = create_app(encoder=encoder, api_key="s3cret")

    async def body(client):
        payload = {"input": "hello"}
        return (await client.post("/v1/embeddings", json=payload),
                await client.post("/v1/embeddings", json=payload, headers={"Authorization": "Bearer wrong"}),
                await client.post("/v1/embeddings", json=payload, headers={"Authorization": "s3cret"}),
                await client.post("/v1/embeddings", json=payload, headers={"Authorization": "Bearer s3cret"}),
                await client.get("/v1/models"),
                await client.get("/metrics"),
                await client.get("/health"))
    missing, wrong, no_scheme, right, models, metrics, health = run_app(app, body)
    for r in (missing, wrong, no_scheme, models, metrics):
        assert_error(r, 401, code="invalid_api_key")
        assert r.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200
    assert health.status_code == 200


def test_health_before_and_after_loading(tiny_dir):
    app = create_app(tiny_dir, threads=1)

    async def body(client):
        first = await client.get("/health")
        early = await client.post("/v1/embeddings", json={"input": "x"})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = await client.get("/health")
            if r.status_code == 200:
                break
            await asyncio.sleep(0.02)
        late = await client.post("/v1/embeddings", json={"input": "x"})
        return first, early, r, late
    first, early, ready, late = run_app(app, body)
    assert first.status_code == 503 and first.json()["status"] == "loading"
    if early.status_code != 200:  # the tiny model may load before the second request
        assert_error(early, 503, code="model_loading")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert late.status_code == 200


def test_health_load_failure(tmp_path):
    app = create_app(tmp_path / "no-such-model")

    async def body(client):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = await client.get("/health")
            if r.json()["status"] != "loading":
                break
            await asyncio.sleep(0.02)
        return r, await client.post("/v1/embeddings", json={"input": "x"})
    health, embed = run_app(app, body)
    assert health.status_code == 503 and health.json()["status"] == "error"
    assert_error(embed, 503, code="model_load_failed")


def test_queue_full_and_retry_after(encoder):
    gated = GatedEncoder(encoder)
    app = create_app(encoder=gated, max_queue=4)

    async def body(client):
        busy = asyncio.ensure_future(client.post("/v1/embeddings", json={"input": ["in the worker"]}))
        await asyncio.get_running_loop().run_in_executor(None, gated.entered.wait, 5)
        queued = asyncio.ensure_future(client.post("/v1/embeddings", json={"input": ["q1", "q2", "q3"]}))
        while app.state.embedrt.batcher.queued < 3:
            await asyncio.sleep(0.005)
        full = await client.post("/v1/embeddings", json={"input": ["one", "two"]})
        fits = asyncio.ensure_future(client.post("/v1/embeddings", json={"input": ["four"]}))
        while app.state.embedrt.batcher.queued < 4:
            await asyncio.sleep(0.005)
        gated.gate.set()
        return full, await busy, await queued, await fits, await client.get("/metrics")
    full, busy, queued, fits, metrics = run_app(app, body)
    err = assert_error(full, 503, code="queue_full")
    assert err["type"] == "server_error"
    assert int(full.headers["retry-after"]) >= 1
    for r, n in ((busy, 1), (queued, 3), (fits, 1)):
        assert r.status_code == 200 and len(r.json()["data"]) == n
    np.testing.assert_allclose(rows(queued), encoder.encode(["q1", "q2", "q3"]), atol=1e-5, rtol=0)
    assert "embedrt_rejected_inputs_total 2" in metrics.text
    assert 'embedrt_requests_total{endpoint="/v1/embeddings",status="503"} 1' in metrics.text


def test_client_disconnect_costs_nothing(encoder):
    gated = GatedEncoder(encoder)
    app = create_app(encoder=gated)

    async def body(client):
        busy = asyncio.ensure_future(client.post("/v1/embeddings", json={"input": ["in the worker"]}))
        await asyncio.get_running_loop().run_in_executor(None, gated.entered.wait, 5)
        gone = asyncio.ensure_future(client.post("/v1/embeddings", json={"input": ["abandoned 1", "abandoned 2"]}))
        batcher = app.state.embedrt.batcher
        while batcher.queued < 2:
            await asyncio.sleep(0.005)
        gone.cancel()                                    # the client goes away while queued
        with pytest.raises(asyncio.CancelledError):
            await gone
        queued_after = batcher.queued
        gated.gate.set()
        first = await busy
        after = await client.post("/v1/embeddings", json={"input": ["still fine"]})
        return queued_after, first, after, await client.get("/metrics")
    queued_after, first, after, metrics = run_app(app, body)
    assert queued_after == 0
    assert first.status_code == 200 and after.status_code == 200
    assert "abandoned 1" not in gated.seen and "abandoned 2" not in gated.seen   # never encoded
    assert "embedrt_cancelled_inputs_total 2" in metrics.text
    np.testing.assert_allclose(rows(after), encoder.encode(["still fine"]), atol=1e-5, rtol=0)


def test_metrics_text(encoder):
    app = create_app(encoder=encoder)

    async def body(client):
        await client.post("/v1/embeddings", json={"input": ["a", "b c"]})
        await client.post("/v1/embeddings", json={"input": []})
        return await client.get("/metrics")
    r = run_app(app, body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for needle in ('embedrt_requests_total{endpoint="/v1/embeddings",status="200"} 1',
                   'embedrt_requests_total{endpoint="/v1/embeddings",status="400"} 1',
                   "embedrt_inputs_total 2", "# TYPE embedrt_batch_size histogram",
                   'embedrt_batch_size_bucket{le="+Inf"} 1', "embedrt_queue_depth 0",
                   "# TYPE embedrt_request_duration_seconds histogram", "embedrt_request_duration_seconds_count 2",
                   "embedrt_model_loaded 1"):
        assert needle in text, needle
    tokens = sum(len(x) for x in encoder.tokenize(["a", "b c"]))
    assert f"embedrt_tokens_total {tokens}" in text


# ----------------------------------------------------------------------------- the batcher
def test_batcher_groups_and_splits():
    calls = []

    def encode(texts, key):
        calls.append((list(texts), key))
        dims = key[0] or 4
        return np.array([[float(t.split()[-1])] * dims for t in texts], dtype=np.float32)

    async def main():
        b = Batcher(encode, max_batch_tokens=10, max_queue=100)
        b.start()
        # hold the worker with one job so the others queue up together
        jobs = [b.submit(["t 0"], [3], (None, None)),
                b.submit([f"t {i}" for i in range(1, 6)], [3] * 5, (None, None)),   # 15 tokens: split
                b.submit(["t 6", "t 7"], [3, 3], (2, None)),                        # another kind
                b.submit(["t 8"], [3], (None, None))]
        outs = [await j.future for j in jobs]
        # the queue holds 100 texts: a request arriving at an empty queue is always taken
        held = b.submit([f"q {i}" for i in range(101)], [1] * 101, (None, None))
        assert b.queued >= 91                  # at most one batch (10 tokens) is in the worker
        with pytest.raises(QueueFull):
            b.submit([f"r {i}" for i in range(10)], [1] * 10, (None, None))
        await held.future
        await b.stop()
        return outs
    outs = asyncio.run(main())
    assert [o[:, 0].tolist() for o in outs] == [[0.0], [1, 2, 3, 4, 5], [6, 7], [8]]
    assert outs[2].shape == (2, 2) and outs[1].shape == (5, 4)
    for texts, key in calls:
        if texts[0].startswith("t "):
            assert len(texts) * 3 <= 10                      # at most max_batch_tokens
            assert all((int(t.split()[-1]) in (6, 7)) == (key == (2, None)) for t in texts)   # one kind
    seen = [t for texts, _ in calls for t in texts if t.startswith("t ")]
    assert sorted(seen) == sorted(f"t {i}" for i in range(9))      # each text encoded once


def test_batcher_waits_for_mates():
    sizes = []

    def encode(texts, key):
        sizes.append(len(texts))
        return np.zeros((len(texts), 2), dtype=np.float32)

    async def main():
        b = Batcher(encode, max_batch_tokens=1000, max_wait_ms=50, max_queue=100)
        b.start()
        first = b.submit(["a"], [2])
        await asyncio.sleep(0.01)
        second = b.submit(["b"], [2])
        await first.future
        await second.future
        await b.stop()
    asyncio.run(main())
    assert sizes == [2]


def test_batcher_workers_run_batches_at_once_and_share_the_queue():
    import threading

    both = threading.Barrier(2, timeout=10)
    sizes = []

    def encode(texts, key):
        sizes.append(len(texts))
        if texts[0].startswith("hold"):
            both.wait()                  # returns only once two batches are in the workers
        return np.array([[float(t.split()[-1])] for t in texts], dtype=np.float32)

    async def main():
        b = Batcher(encode, max_batch_tokens=100, max_queue=100, workers=2)
        b.start()
        first = b.submit(["hold 1"], [1])
        second = b.submit(["hold 2", "hold 3"], [1, 1])
        held = [await first.future, await second.future]
        sizes.clear()
        # both workers idle: one request of 8 texts is shared between them
        shared = b.submit([f"t {i}" for i in range(8)], [1] * 8)
        out = await shared.future
        await b.stop()
        return held, out
    held, out = asyncio.run(main())
    assert held[0][:, 0].tolist() == [1.0] and held[1][:, 0].tolist() == [2.0, 3.0]
    assert sorted(sizes) == [4, 4]
    assert out[:, 0].tolist() == [float(i) for i in range(8)]     # rows in the request's order


def test_batcher_mates_wait_while_another_batch_runs():
    import threading

    gate = threading.Event()
    sizes = []

    def encode(texts, key):
        sizes.append(len(texts))
        if texts[0] == "hold":
            gate.wait(10)
        return np.zeros((len(texts), 2), dtype=np.float32)

    async def main():
        b = Batcher(encode, max_queue=100, workers=2, mate_wait_ms=200)
        b.start()
        held = b.submit(["hold"], [1])           # an idle server starts at once
        await asyncio.sleep(0.01)
        first = b.submit(["a"], [1])             # another batch runs: waits for mates
        await asyncio.sleep(0.01)
        second = b.submit(["b"], [1])
        await first.future
        await second.future
        gate.set()
        await held.future
        await b.stop()
    asyncio.run(main())
    assert sizes == [1, 2]
    with pytest.raises(ValueError, match="mate_wait_ms"):
        Batcher(lambda t, k: None, mate_wait_ms=-1)


def test_server_threads_and_workers():
    from embedrt.serve.app import _workers_and_threads

    assert _workers_and_threads(4, None, False) == (4, 1)      # one thread per batch
    assert _workers_and_threads(4, 2, False) == (2, 2)
    assert _workers_and_threads(4, 1, False) == (1, 4)         # one batch on every thread
    assert _workers_and_threads(3, 8, False) == (8, 1)
    assert _workers_and_threads(None, None, True) == (1, None)  # a given encoder keeps its threads
    assert _workers_and_threads(2, 3, True) == (3, 2)
    with pytest.raises(ValueError, match="workers"):
        _workers_and_threads(2, 0, False)
    with pytest.raises(ValueError, match="workers"):
        Batcher(lambda t, k: None, workers=0)


# ----------------------------------------------------------------------------- live server, load
def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    return sock


def test_concurrent_clients_live(encoder):
    import uvicorn

    app = create_app(encoder=encoder)
    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started

    clients, seconds = 32, 2.0
    sent = {}      # (client, seq) -> texts
    got = {}       # (client, seq) -> rows

    async def client(cid, http):
        seq = 0
        stop = time.monotonic() + seconds
        while time.monotonic() < stop and seq < 10_000:
            texts = [f"client {cid} request {seq} part {k}" + " more" * ((cid + seq + k) % 7)
                     for k in range(1 + (cid + seq) % 3)]
            sent[(cid, seq)] = texts
            r = await http.post("/v1/embeddings", json={"input": texts})
            assert r.status_code == 200, r.text
            assert (cid, seq) not in got
            got[(cid, seq)] = rows(r)
            seq += 1

    async def main():
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{port}", limits=limits, timeout=30) as http:
            await asyncio.gather(*(client(c, http) for c in range(clients)))
            return (await http.get("/metrics")).text
    try:
        metrics = asyncio.run(main())
    finally:
        server.should_exit = True
        thread.join(15)
    assert not thread.is_alive()
    assert sent.keys() == got.keys() and len(got) >= clients
    keys = sorted(sent)
    all_texts = [t for k in keys for t in sent[k]]
    assert len(set(all_texts)) == len(all_texts)
    expected = encoder.encode(all_texts)
    served = np.concatenate([got[k] for k in keys])
    np.testing.assert_allclose(served, expected, atol=1e-5, rtol=0)
    assert f'embedrt_requests_total{{endpoint="/v1/embeddings",status="200"}} {len(keys)}' in metrics
    assert f"embedrt_inputs_total {len(all_texts)}" in metrics
    batches = int(metrics.split("embedrt_batch_size_count ")[1].split()[0])
    assert batches < len(keys)          # concurrent requests shared batches


# ----------------------------------------------------------------------------- SIGTERM
def _wait_health(port, proc, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(f"http://{LOOPBACK}:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("the server did not become healthy")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sigterm_drains_and_exits_0(tiny_dir, tmp_path):
    sock = _free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = subprocess_env(EMBEDRT_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("EMBEDRT_API_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "embedrt.cli", "serve", "--model", str(tiny_dir),
                             "--host", LOOPBACK, "--port", str(port), "--threads", "1",
                             "--max-batch-tokens", "2048"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_health(port, proc)
        base = f"http://{LOOPBACK}:{port}"
        big = [[f"request {r} text {i} " + "word " * 50 for i in range(700)] for r in range(3)]

        async def main():
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                tasks = [asyncio.ensure_future(http.post("/v1/embeddings", json={"input": texts})) for texts in big]
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:      # all three are being answered
                    m = (await http.get("/metrics")).text
                    if "embedrt_requests_in_flight 3" in m:
                        break
                    await asyncio.sleep(0.01)
                else:
                    raise AssertionError("the requests never were in flight together")
                proc.send_signal(signal.SIGTERM)
                return await asyncio.gather(*tasks)
        answers = asyncio.run(main())
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert rc == 0, proc.stderr.read()
    for r, texts in zip(answers, big):
        assert r.status_code == 200
        assert len(r.json()["data"]) == len(texts)
    enc = embedrt.Encoder(tiny_dir, threads=1)
    np.testing.assert_allclose(rows(answers[2]), enc.encode(big[2]), atol=1e-5, rtol=0)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{LOOPBACK}:{port}/health", timeout=1)


def test_cli_parser():
    from embedrt.cli import build_parser

    args = build_parser().parse_args(["serve", "--model", "m", "--max-batch-tokens", "100", "--api-key", "k"])
    assert args.host == "127.0.0.1" and args.port == 8080 and args.max_batch_tokens == 100
    assert args.api_key == "k" and args.func.__name__ == "_cmd_serve"
    out = subprocess.run([sys.executable, "-m", "embedrt.cli", "serve", "--help"], env=subprocess_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "/v1/embeddings" in out.stdout and "--workers" in out.stdout
    for bad in (["--workers", "0"], ["--threads", "0"]):
        out = subprocess.run([sys.executable, "-m", "embedrt.cli", "serve", "--model", "m", *bad],
                             env=subprocess_env(), capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and f"{bad[0]} must be at least 1" in out.stderr, out.stderr


def test_responses_without_orjson(encoder, monkeypatch):
    """orjson is optional: the standard library's json writes the same embeddings."""
    import embedrt.serve.app as app_module

    texts = ["one text", "and another"]
    fast = call(create_app(encoder=encoder), "POST", "/v1/embeddings", json={"input": texts})
    tei_fast = call(create_app(encoder=encoder), "POST", "/embed", json={"inputs": texts})
    monkeypatch.setattr(app_module, "orjson", None)
    plain = call(create_app(encoder=encoder), "POST", "/v1/embeddings", json={"input": texts})
    tei_plain = call(create_app(encoder=encoder), "POST", "/embed", json={"inputs": texts})
    for r in (fast, plain, tei_fast, tei_plain):
        assert r.status_code == 200, r.text
    want = encoder.encode(texts)
    np.testing.assert_allclose(rows(plain), want, atol=1e-6, rtol=0)
    # float32 values written in their shortest form read back as the same float32
    np.testing.assert_array_equal(rows(fast).astype(np.float32), want)
    np.testing.assert_array_equal(np.array(tei_fast.json(), np.float32), np.array(tei_plain.json(), np.float32))
    assert plain.json()["usage"] == fast.json()["usage"]


def test_direct_endpoints_mounted_and_routed(encoder):
    """The POST embedding endpoints are answered straight from the ASGI scope; the rest goes
    through Starlette's routing: mounted under a prefix, wrong methods and unknown paths."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    inner = create_app(encoder=encoder)
    outer = Starlette(routes=[Mount("/emb", app=inner)])

    async def body(client):
        async with inner.router.lifespan_context(inner):
            mounted = await client.post("/emb/v1/embeddings", json={"input": ["mounted"]})
            tei = await client.post("/emb/embed", json={"inputs": "mounted"})
            unprefixed = await client.post("/v1/embeddings", json={"input": ["mounted"]})
            return mounted, tei, unprefixed
    transport_app = outer

    async def main():
        transport = httpx.ASGITransport(app=transport_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await body(client)
    mounted, tei, unprefixed = asyncio.run(main())
    assert mounted.status_code == 200, mounted.text
    np.testing.assert_allclose(rows(mounted), encoder.encode(["mounted"]), atol=1e-5, rtol=0)
    assert tei.status_code == 200 and np.asarray(tei.json()).shape == (1, encoder.dim)
    assert unprefixed.status_code == 404

    app = create_app(encoder=encoder)
    assert call(app, "GET", "/v1/embeddings").status_code == 405
    assert call(app, "POST", "/v1/nothing-here", json={"input": "x"}).status_code == 404
    assert call(app, "POST", "/embeddings", json={"input": "x"}).status_code == 200


def test_request_body_in_chunks_and_disconnect():
    """The direct path's request reads a body sent in several messages, and a disconnect while
    it reads ends the request without an answer."""
    from embedrt.serve.app import _ClientGone, _read_json, _Request

    def receiver(messages):
        it = iter(messages)

        async def receive():
            return next(it)
        return receive

    scope = {"type": "http", "headers": [(b"Content-Type", b"application/json"), (b"X-A", b"1"), (b"x-a", b"2")]}
    parts = [b'{"input": ', b'["a", ', b'"b"]}']
    messages = [{"type": "http.request", "body": p, "more_body": i < 2} for i, p in enumerate(parts)]
    req = _Request(scope, receiver(messages))
    assert req.headers["content-type"] == "application/json" and req.headers["x-a"] == "1"
    assert asyncio.run(_read_json(req)) == {"input": ["a", "b"]}

    gone = _Request(scope, receiver([{"type": "http.request", "body": b"{", "more_body": True},
                                     {"type": "http.disconnect"}]))
    with pytest.raises(_ClientGone):
        asyncio.run(_read_json(gone))
