"""The ASGI app: OpenAI's ``/v1/embeddings`` (and TEI's ``/embed``) over one embedrt Encoder."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from .batcher import Batcher, QueueFull, Stopping
from .metrics import CONTENT_TYPE, ServerMetrics

logger = logging.getLogger("embedrt")

MAX_INPUTS = 2048                  # texts per request (OpenAI's limit)
MAX_BODY_BYTES = 64 * 1024 * 1024  # request body
DEFAULT_MAX_BATCH_TOKENS = 8192
DEFAULT_MAX_WAIT_MS = 0.0
DEFAULT_MAX_QUEUE = 8192
ENCODE_BATCH_SIZE = 32             # texts per forward pass inside one server batch
_INLINE_TOKENIZE_CHARS = 32768     # larger requests are tokenized off the event loop
_INLINE_SERIALIZE_FLOATS = 65536   # larger responses are serialized off the event loop
TRUNCATED_HEADER = "X-Embedrt-Truncated"
SWITCH_INTERVAL = 0.0005           # seconds: the server process's GIL switch interval


# ----------------------------------------------------------------------------- errors
class ApiError(Exception):
    """An error answered with OpenAI's error body {"error": {message, type, param, code}}."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param=None,
                 code=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self, style: str = "openai") -> dict:
        if style == "tei":
            return {"error": self.message, "error_type": _TEI_ERROR_TYPES.get(self.status, "Validation")}
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


_TEI_ERROR_TYPES = {401: "Unauthorized", 413: "Validation", 422: "Validation", 400: "Validation",
                    404: "Validation", 503: "Overloaded", 500: "Backend"}


class _ClientGone(Exception):
    """The client disconnected before its answer was ready."""


try:  # in the serve extra: writes float32 arrays directly, several times faster than json
    import orjson
except ImportError:  # pragma: no cover - the standard library's json does the same, slower
    orjson = None


def _json_bytes(obj) -> bytes:
    """Compact UTF-8 JSON. numpy float32 arrays are written as lists (with orjson, each float
    in its shortest form that reads back as the same float32)."""
    if orjson is not None:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_tolist).encode("utf-8")


def _tolist(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


# ----------------------------------------------------------------------------- the served model
class _Served:
    """The app's state: the encoder (once loaded), its names, the batcher and the metrics."""

    def __init__(self, model, encoder, backend, threads, max_batch_tokens, max_wait_ms, max_queue,
                 api_key, model_name, workers=None):
        self.model = model
        self.encoder = None
        self.backend = backend
        workers, self.threads = _workers_and_threads(threads, workers, encoder is not None)
        self.api_key = api_key or None
        self.model_name = model_name
        self.metrics = ServerMetrics()
        self.batcher = Batcher(self._encode, max_batch_tokens=max_batch_tokens, max_wait_ms=max_wait_ms,
                               max_queue=max_queue, metrics=self.metrics, workers=workers)
        self.load_error = None
        self.created = int(time.time())
        self.names = ()
        self._untruncated = None
        self._load_task = None
        self._started = False
        if encoder is not None:
            self._set_encoder(encoder)

    # -------------------------------------------------------------- loading
    def _set_encoder(self, encoder) -> None:
        self.encoder = encoder
        self.names = self._model_names(encoder)
        self.name = self.names[0]
        self.created = int(time.time())
        self.metrics.loaded.set(1)

    def _model_names(self, encoder) -> tuple:
        path = Path(getattr(encoder, "path", "") or "model")
        names = []
        if self.model_name:
            names.append(self.model_name)
        if self.model is None and self.model_name is None and getattr(encoder, "path", None) is not None:
            try:  # the default model: its own name, not the cache folder's
                from ..encoder.default_model import DEFAULT_MODEL

                if path.name.startswith(DEFAULT_MODEL):
                    names.append(DEFAULT_MODEL)
            except ImportError:
                pass
        names.append(path.name)
        folder = getattr(encoder, "folder", None)
        config = getattr(folder, "config", None) or {}
        origin = config.get("_name_or_path") if isinstance(config, dict) else None
        if isinstance(origin, str) and origin and not os.path.isabs(origin):
            names.append(origin)
            names.append(origin.rstrip("/").split("/")[-1])
        names.append("default")
        out = []
        for n in names:
            if n and n not in out:
                out.append(n)
        return tuple(out)

    def knows(self, name: str) -> bool:
        wanted = name.strip().lower()
        known = {n.lower() for n in self.names}
        if wanted in known:
            return True
        # a hub-style id ("org/name") whose last part names the model
        return "/" in wanted and wanted.rstrip("/").split("/")[-1] in known

    def _load(self):
        from ..encoder import Encoder

        return Encoder(self.model, backend=self.backend, threads=self.threads)

    async def _load_in_background(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            encoder = await loop.run_in_executor(self.batcher.executor, self._load)
        except Exception as e:  # noqa: BLE001 - reported by /health and each request
            self.load_error = f"{type(e).__name__}: {e}"
            logger.error("embedrt serve: could not load the model: %s", self.load_error)
            return
        self._set_encoder(encoder)
        logger.info("embedrt serve: %s loaded (%s)", self.name, encoder.backend_name
                    if hasattr(encoder, "backend_name") else type(encoder).__name__)

    def start(self) -> None:
        """Starts the batcher and, without an encoder, the model's loading (on the worker thread).
        Runs at the app's lifespan startup, or at its first request when mounted without it."""
        if self._started:
            return
        self._started = True
        self.batcher.start()
        if self.encoder is None and self.load_error is None:
            self._load_task = asyncio.get_running_loop().create_task(self._load_in_background())

    async def shutdown(self) -> None:
        """Takes no new texts and answers those queued (the batcher drains)."""
        if self._load_task is not None and not self._load_task.done():
            with contextlib.suppress(Exception):
                await self._load_task
        await self.batcher.stop(drain=True)
        self._started = False

    def ready(self) -> None:
        """Raises ApiError 503 while the model is not usable."""
        self.start()
        if self.encoder is not None:
            return
        if self.load_error is not None:
            raise ApiError(503, f"the model could not be loaded: {self.load_error}", type="server_error",
                           code="model_load_failed")
        raise ApiError(503, "the model is loading; retry shortly", type="server_error",
                       code="model_loading", headers={"Retry-After": "1"})

    # -------------------------------------------------------------- encoding
    def _encode(self, items, key):
        """Rows for a batch: token ids from `tokenize` (not tokenized again), or texts when the
        model adds a default prompt (encode applies it)."""
        dims, normalize = key
        if items and not isinstance(items[0], str):
            return self.encoder.encode_tokens(items, batch_size=ENCODE_BATCH_SIZE, truncate_dim=dims,
                                              normalize_embeddings=normalize)
        return self.encoder.encode(items, batch_size=ENCODE_BATCH_SIZE, truncate_dim=dims,
                                   normalize_embeddings=normalize, show_progress_bar=False)

    def _count_untruncated(self, text: str) -> int:
        if self._untruncated is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.encoder.folder.tokenizer_path))
            tok.no_truncation()
            tok.no_padding()
            self._untruncated = tok
        lower = getattr(self.encoder.folder, "do_lower_case", False)
        return len(self._untruncated.encode(text.lower() if lower else text).ids)

    def tokenize(self, texts) -> tuple:
        """(token counts after truncation, indexes of the texts that were truncated, what the
        batcher encodes: the token ids, or the texts when the model adds a default prompt)."""
        ids = self.encoder.tokenize(texts)
        counts = [int(len(x)) for x in ids]
        limit = getattr(self.encoder, "max_seq_length", None)
        truncated = []
        if limit:
            for i, c in enumerate(counts):
                if c >= limit:
                    try:
                        if self._count_untruncated(texts[i]) > limit:
                            truncated.append(i)
                    except Exception:  # noqa: BLE001 - no separate tokenizer: count at the limit
                        truncated.append(i)
        prompted = self.encoder.default_prompt_name is not None
        return counts, truncated, (texts if prompted else ids)

    async def tokenize_async(self, texts, param: str = "input") -> tuple:
        try:
            if len(texts) <= 16 and sum(len(t) for t in texts) <= _INLINE_TOKENIZE_CHARS:
                return self.tokenize(texts)
            return await asyncio.get_running_loop().run_in_executor(None, self.tokenize, texts)
        except (TypeError, ValueError) as e:  # e.g. a lone surrogate ("\ud800") in a text
            for i, t in enumerate(texts):
                try:
                    t.encode("utf-8")
                except UnicodeEncodeError:
                    raise ApiError(400, f"'{param}[{i}]' is not valid Unicode (a lone surrogate)",
                                   param=f"{param}[{i}]", code="invalid_value") from None
            raise ApiError(400, f"'{param}' could not be tokenized: {e}", param=param,
                           code="invalid_value") from None

    async def embed(self, request, texts, counts, dims, normalize) -> np.ndarray:
        """The rows of `texts` from the batcher; drops them if the client disconnects first."""
        try:
            job = self.batcher.submit(texts, counts, (dims, normalize))
        except QueueFull as e:
            raise ApiError(503, str(e), type="server_error", code="queue_full",
                           headers={"Retry-After": str(e.retry_after)}) from None
        except Stopping as e:
            raise ApiError(503, str(e), type="server_error", code="shutting_down",
                           headers={"Retry-After": "1", "Connection": "close"}) from None
        # Wait for the rows or the client's disconnect, whichever comes first: one waiter
        # future woken by either (cheaper than asyncio.wait, which builds sets and callbacks).
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def wake(_):
            if not waiter.done():
                waiter.set_result(None)

        job.future.add_done_callback(wake)
        watcher = loop.create_task(_wait_disconnect(request.receive))
        watcher.add_done_callback(wake)
        try:
            await waiter
        except asyncio.CancelledError:
            self.batcher.cancel(job)
            raise
        finally:
            job.future.remove_done_callback(wake)
            watcher.cancel()
        if not job.future.done():
            self.batcher.cancel(job)
            raise _ClientGone()
        if job.future.cancelled():
            raise _ClientGone()
        exc = job.future.exception()
        if isinstance(exc, Stopping):
            raise ApiError(503, str(exc), type="server_error", code="shutting_down",
                           headers={"Retry-After": "1"})
        if exc is not None:
            logger.error("embedrt serve: encoding failed: %s: %s", type(exc).__name__, exc)
            raise ApiError(500, f"encoding failed: {type(exc).__name__}: {exc}", type="server_error",
                           code="encoding_failed")
        return job.future.result()


async def _wait_disconnect(receive) -> None:
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return


# ----------------------------------------------------------------------------- request parsing
class _Request:
    """What the embedding handlers use of a Starlette Request (headers, the body stream and
    ``receive``), over the raw ASGI scope: the app answers its POST endpoints with it directly,
    without Starlette's middleware and routing on every request."""

    __slots__ = ("scope", "receive", "_headers")

    def __init__(self, scope, receive):
        self.scope = scope
        self.receive = receive
        self._headers = None

    @property
    def headers(self) -> dict:
        """Lower-case names; the first value of a repeated header, as Starlette's get()."""
        if self._headers is None:
            headers = {}
            for name, value in self.scope.get("headers", ()):
                headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
            self._headers = headers
        return self._headers

    async def stream(self):
        while True:
            message = await self.receive()
            kind = message.get("type")
            if kind == "http.request":
                body = message.get("body", b"")
                if body:
                    yield body
                if not message.get("more_body", False):
                    return
            elif kind == "http.disconnect":
                raise _ClientGone()


def _route_path(scope) -> str:
    """The path below the app's mount point (``root_path``), as Starlette's routing sees it."""
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("/", ""):
        return path[len(root):]
    return path


async def _read_body(request) -> bytes:
    """The request body, at most MAX_BODY_BYTES (413 beyond)."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is larger than {MAX_BODY_BYTES} bytes", code="body_too_large")
    chunks = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            raise ApiError(413, f"the request body is larger than {MAX_BODY_BYTES} bytes", code="body_too_large")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _read_json(request):
    data = await _read_body(request)
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the request body is not valid JSON ({e})", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(body).__name__}",
                       code="invalid_type")
    return body


def _is_token_ids(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value)


def _texts(value, param: str) -> list:
    if value is None:
        raise ApiError(400, f"'{param}' is required: a string or a list of strings", param=param,
                       code="missing_required_parameter")
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list):
        if not value:
            raise ApiError(400, f"'{param}' must not be an empty list", param=param, code="empty_input")
        if len(value) > MAX_INPUTS:
            raise ApiError(413, f"'{param}' holds {len(value)} texts; at most {MAX_INPUTS} per request",
                           param=param, code="too_many_inputs")
        if _is_token_ids(value) or any(_is_token_ids(x) for x in value):
            raise ApiError(400, f"'{param}' holds token ids; this server takes text only "
                                "(a string or a list of strings)", param=param, code="token_ids_unsupported")
        for i, x in enumerate(value):
            if not isinstance(x, str):
                raise ApiError(400, f"'{param}[{i}]' must be a string, got {_json_type(x)}",
                               param=f"{param}[{i}]", code="invalid_type")
        texts = value
    else:
        raise ApiError(400, f"'{param}' must be a string or a list of strings, got {_json_type(value)}",
                       param=param, code="invalid_type")
    for i, t in enumerate(texts):
        if not t:
            where = param if isinstance(value, str) else f"{param}[{i}]"
            raise ApiError(400, f"'{where}' is an empty string", param=where, code="empty_input")
    return texts


def _json_type(x) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "a boolean"
    if isinstance(x, (int, float)):
        return "a number"
    if isinstance(x, list):
        return "an array"
    if isinstance(x, dict):
        return "an object"
    return type(x).__name__


def _dimensions(value, dim: int, param: str = "dimensions"):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"'{param}' must be an integer, got {_json_type(value)}", param=param,
                       code="invalid_type")
    if value < 1:
        raise ApiError(400, f"'{param}' must be at least 1, got {value}", param=param, code="invalid_value")
    if value > dim:
        raise ApiError(400, f"'{param}' is {value}, but the model's embeddings have {dim} dimensions",
                       param=param, code="invalid_value")
    return value if value < dim else None


# ----------------------------------------------------------------------------- the app
def _workers_and_threads(threads, workers, given_encoder: bool) -> tuple:
    """(batches encoded at once, inference threads per batch) for `threads` threads in all.
    By default each batch runs on one thread and there are as many at once as threads: the
    small batches of a server keep each core busier that way than split over all cores (the
    event loop's work then overlaps the encoding instead of stalling it). A given encoder
    keeps its own threads and, by default, runs one batch at a time."""
    from .._checks import as_int

    if threads is not None:
        threads = as_int(threads, "threads", minimum=1)
    if workers is not None:
        workers = as_int(workers, "workers", minimum=1)
    if given_encoder:
        return (workers or 1), threads
    if workers is None:
        if threads is None:
            from .._runtime import get_num_threads

            threads = get_num_threads()
        workers = threads
    per_batch = max(1, (threads or workers) // workers)
    return workers, per_batch


def create_app(model=None, *, encoder=None, backend: str = "auto", threads=None, workers=None,
               max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS, max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
               max_queue: int = DEFAULT_MAX_QUEUE, api_key=None, model_name=None):
    """The embedding server as an ASGI app (Starlette).

    Args:
        model: the exported model folder to serve (default: all-MiniLM-L6-v2). It loads in the
            background at startup; ``GET /health`` answers 503 until it is ready.
        encoder: a loaded ``embedrt.Encoder`` to serve instead of ``model``.
        backend: as ``embedrt.Encoder`` takes it (when the app loads ``model``).
        threads: inference threads in all, when the app loads ``model`` (default: all cores).
        workers: batches encoded at once, each in a thread of its own on ``threads // workers``
            inference threads (default: ``threads``, so one thread per batch; with ``encoder``
            given: 1, and the encoder keeps its threads).
        max_batch_tokens: an encoder batch stops growing at this many tokens.
        max_wait_ms: with the encoder idle, how long a batch may wait for more texts (default 0:
            it starts at once; texts arriving while a batch runs form the next one anyway).
        max_queue: at most this many texts wait for the encoder; beyond, requests get 503 with
            ``Retry-After``.
        api_key: when set, every endpoint but ``/health`` needs ``Authorization: Bearer <api_key>``.
        model_name: the model's name in responses and ``/v1/models`` (default: the folder's name).
            Requests may name it, the folder, the config's ``_name_or_path`` or ``"default"``.

    Mounted inside another app, run this app's lifespan (``app.router.lifespan_context``) so
    that shutdown drains the queue; without it the batcher starts at the first request.
    """
    try:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route
    except ImportError as e:
        raise ImportError(f"embedrt.serve needs starlette and uvicorn: pip install 'embedrt[serve]' ({e})") from None

    served = _Served(model, encoder, backend, threads, max_batch_tokens, max_wait_ms, max_queue,
                     api_key, model_name, workers)
    metrics = served.metrics

    def error_response(e: ApiError, style: str = "openai") -> Response:
        headers = dict(e.headers)
        if e.status == 401:
            headers.setdefault("WWW-Authenticate", "Bearer")
        return Response(_json_bytes(e.body(style)), status_code=e.status, headers=headers,
                        media_type="application/json")

    def check_auth(request) -> None:
        if served.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
        if not hmac.compare_digest(token.strip().encode("utf-8"), served.api_key.encode("utf-8")):
            raise ApiError(401, "incorrect API key", code="invalid_api_key")

    def endpoint(path: str, style: str = "openai", embedding: bool = False):
        """Wraps a handler: errors as responses, request counts and latency in the metrics."""
        def wrap(handler):
            async def run(request):
                t0 = time.perf_counter()
                if embedding:
                    metrics.in_flight.inc()
                try:
                    check_auth(request)
                    response = await handler(request)
                except ApiError as e:
                    response = error_response(e, style)
                except _ClientGone:
                    response = Response(status_code=499)
                except Exception as e:  # noqa: BLE001 - a bug should answer 500, not drop the connection
                    logger.exception("embedrt serve: %s failed", path)
                    response = error_response(ApiError(500, f"internal error: {type(e).__name__}: {e}",
                                                       type="server_error", code="internal_error"), style)
                finally:
                    if embedding:
                        metrics.in_flight.dec()
                metrics.requests.inc(1, path, str(response.status_code))
                if embedding:
                    metrics.latency.observe(time.perf_counter() - t0)
                return response
            return run
        return wrap

    async def render(obj) -> bytes:
        return _json_bytes(obj)

    async def serialize(obj, floats: int) -> bytes:
        if floats <= _INLINE_SERIALIZE_FLOATS:
            return _json_bytes(obj)
        return await asyncio.get_running_loop().run_in_executor(None, _json_bytes, obj)

    async def encode_texts(request, texts, dims, normalize, param="input", tokenized=None):
        counts, truncated, items = tokenized or await served.tokenize_async(texts, param)
        emb = await served.embed(request, items, counts, dims, normalize)
        tokens = sum(counts)
        metrics.inputs.inc(len(texts))
        metrics.tokens.inc(tokens)
        if truncated:
            metrics.truncated.inc(len(truncated))
        return emb, tokens, truncated

    @endpoint("/v1/embeddings", embedding=True)
    async def embeddings(request):
        body = await _read_json(request)
        name = body.get("model")
        if name is not None and not isinstance(name, str):
            raise ApiError(400, f"'model' must be a string, got {_json_type(name)}", param="model",
                           code="invalid_type")
        texts = _texts(body.get("input"), "input")
        fmt = body.get("encoding_format")
        if fmt is None:
            fmt = "float"
        if fmt not in ("float", "base64"):
            raise ApiError(400, f"'encoding_format' must be 'float' or 'base64', got {json.dumps(fmt)}",
                           param="encoding_format", code="invalid_value")
        served.ready()
        if name is not None and not served.knows(name):
            raise ApiError(404, f"The model '{name}' does not exist; this server serves '{served.name}' "
                                f"(also known as {', '.join(repr(n) for n in served.names[1:])})",
                           param="model", code="model_not_found")
        dims = _dimensions(body.get("dimensions"), served.encoder.dim)
        emb, tokens, truncated = await encode_texts(request, texts, dims, None)
        if fmt == "base64":
            rows = emb.astype("<f4", copy=False)
            data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(r.tobytes()).decode("ascii")}
                    for i, r in enumerate(rows)]
        else:
            emb = np.ascontiguousarray(emb, dtype=np.float32)
            data = [{"object": "embedding", "index": i, "embedding": r} for i, r in enumerate(emb)]
        out = {"object": "list", "data": data, "model": served.name,
               "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        content = await serialize(out, emb.size if fmt == "float" else 0)
        return Response(content, media_type="application/json",
                        headers={TRUNCATED_HEADER: str(len(truncated))})

    @endpoint("/embed", style="tei", embedding=True)
    async def embed_tei(request):
        body = await _read_json(request)
        texts = _texts(body.get("inputs"), "inputs")
        normalize = body.get("normalize", True)
        truncate = body.get("truncate", False)
        for key, value in (("normalize", normalize), ("truncate", truncate)):
            if not isinstance(value, bool):
                raise ApiError(422, f"'{key}' must be a boolean, got {_json_type(value)}", param=key)
        served.ready()
        dims = _dimensions(body.get("dimensions"), served.encoder.dim)
        tokenized = await served.tokenize_async(texts, "inputs")
        if not truncate and tokenized[1]:
            raise ApiError(413, f"inputs[{tokenized[1][0]}] is longer than the model's limit of "
                                f"{served.encoder.max_seq_length} tokens (send \"truncate\": true)",
                           param="inputs")
        emb, _, truncated = await encode_texts(request, texts, dims, bool(normalize), "inputs", tokenized)
        content = await serialize(np.ascontiguousarray(emb, dtype=np.float32), emb.size)
        return Response(content, media_type="application/json",
                        headers={TRUNCATED_HEADER: str(len(truncated))})

    @endpoint("/v1/models")
    async def models(request):
        served.ready()
        return Response(await render({"object": "list", "data": [
            {"id": served.name, "object": "model", "created": served.created, "owned_by": "embedrt"}]}),
            media_type="application/json")

    @endpoint("/v1/models/{name:path}")
    async def model(request):
        served.ready()
        name = request.path_params["name"]
        if not served.knows(name):
            raise ApiError(404, f"The model '{name}' does not exist", param="model", code="model_not_found")
        return Response(await render({"id": served.name, "object": "model", "created": served.created,
                                      "owned_by": "embedrt"}), media_type="application/json")

    async def health(request):
        served.start()
        if served.encoder is not None:
            response = JSONResponse({"status": "ok", "model": served.name})
        elif served.load_error is not None:
            response = JSONResponse({"status": "error", "error": served.load_error}, status_code=503)
        else:
            response = JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "1"})
        metrics.requests.inc(1, "/health", str(response.status_code))
        return response

    @endpoint("/metrics")
    async def metrics_endpoint(request):
        metrics.queue_depth.set(served.batcher.queued)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        served.start()
        try:
            yield
        finally:
            await served.shutdown()

    routes = [
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/embeddings", embeddings, methods=["POST"]),
        Route("/embed", embed_tei, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{name:path}", model, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    fast = {"/v1/embeddings": embeddings, "/embeddings": embeddings, "/embed": embed_tei}

    class EmbedrtApp(Starlette):
        """Starlette, with the POST embedding endpoints answered directly from the ASGI scope
        (their handlers catch every error themselves, so the middleware has nothing to add)."""

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http" and scope.get("method") == "POST":
                handler = fast.get(_route_path(scope))
                if handler is not None:
                    response = await handler(_Request(scope, receive))
                    await send({"type": "http.response.start", "status": response.status_code,
                                "headers": response.raw_headers})
                    await send({"type": "http.response.body", "body": response.body})
                    return
            await super().__call__(scope, receive, send)

    app = EmbedrtApp(routes=routes, lifespan=lifespan)
    app.state.embedrt = served
    return app


# ----------------------------------------------------------------------------- running it
def serve(model=None, *, host: str = "127.0.0.1", port: int = 8080, backend: str = "auto", threads=None,
          workers=None, max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS, max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
          max_queue: int = DEFAULT_MAX_QUEUE, api_key=None, model_name=None, log_level: str = "info",
          access_log: bool = False, graceful_timeout: float = 30.0) -> int:
    """Loads the model, then serves it with uvicorn until SIGTERM or SIGINT; returns 0 after a
    graceful shutdown (no new connections, in-flight requests answered, the queue drained)."""
    import signal

    try:
        import uvicorn
    except ImportError as e:
        raise ImportError(f"embedrt serve needs uvicorn and starlette: pip install 'embedrt[serve]' ({e})") from None
    from ..encoder import Encoder

    workers, per_batch = _workers_and_threads(threads, workers, False)
    encoder = Encoder(model, backend=backend, threads=per_batch)
    # The encoder's thread takes the GIL back after each native kernel call; with the event loop
    # busy, the default 5 ms switch interval would hold it up that long each time.
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
    app = create_app(model, encoder=encoder, workers=workers, max_batch_tokens=max_batch_tokens,
                     max_wait_ms=max_wait_ms,
                     max_queue=max_queue, api_key=api_key, model_name=model_name)
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", log_level=log_level,
                            access_log=access_log, timeout_graceful_shutdown=graceful_timeout)
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again for the
    # handler it found installed; a handler that only notes it makes that a clean exit.
    caught = []

    def note(sig, frame):
        caught.append(sig)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, OSError):  # not the main thread
            previous[sig] = signal.signal(sig, note)
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, handler)
    return 0 if server.started else 1
