"""Dynamic batching: the texts of concurrent requests share encoder batches.

Batches are formed on the event loop, as requests arrive and as batches finish (no task to
wake), and worker threads run them, off the event loop (the encoder's kernels release the
GIL): ``workers`` batches at once, and the texts queued while workers are idle are shared
between them. While the workers are busy, the texts that arrive queue up and form the next
batches, up to ``max_batch_tokens`` tokens each; with a worker idle a batch starts at once, or
after up to ``max_wait_ms`` when that is set (to gather more texts per batch). A batch holds
texts of one kind only (the same output dimensions and normalization); a request longer than a
batch is split over several. Each request gets its own rows back, in order.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time

import numpy as np


class QueueFull(Exception):
    """More texts are waiting than the queue holds; the client should retry later."""

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class Stopping(Exception):
    """The server is shutting down and takes no new work."""


class _Job:
    __slots__ = ("texts", "tokens", "key", "future", "out", "taken", "done", "cancelled", "t0")

    def __init__(self, texts, tokens, key, future):
        self.texts = texts
        self.tokens = tokens
        self.key = key
        self.future = future
        self.out = None
        self.taken = 0      # texts handed to a batch so far
        self.done = 0       # texts whose rows are in
        self.cancelled = False
        self.t0 = time.perf_counter()


class Batcher:
    """Collects texts from concurrent requests into encoder batches.

    Args:
        encode: ``encode(texts, key) -> float32 array (len(texts), dim)``, run in the worker thread.
        max_batch_tokens: a batch stops growing at this many tokens (it always takes one text).
        max_wait_ms: with the worker idle, how long a batch below ``max_batch_tokens`` may wait
            for more texts (0: it starts at once).
        max_queue: at most this many texts wait; beyond, ``submit`` raises ``QueueFull``
            (a request arriving at an empty queue is always taken).
        metrics: a ``ServerMetrics`` (optional).
        workers: batches encoded at once, each in a worker thread of its own (default 1). With
            several, the texts queued when workers are idle are shared between them.
        mate_wait_ms: while another batch runs, how long a new batch below ``max_batch_tokens``
            waits for more texts (default 1: under load, requests answered together come back
            together, and a batch started on the first of them alone would be a small one). An
            idle server starts at once (or after ``max_wait_ms``).
        executor: the executor to run batches on (default: a new one with ``workers`` threads).
    """

    def __init__(self, encode, *, max_batch_tokens: int = 8192, max_wait_ms: float = 0.0,
                 max_queue: int = 4096, metrics=None, workers: int = 1, mate_wait_ms: float = 1.0,
                 executor=None):
        if max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._encode = encode
        self.max_batch_tokens = int(max_batch_tokens)
        self.max_wait = float(max_wait_ms) / 1000.0
        if mate_wait_ms < 0:
            raise ValueError(f"mate_wait_ms must be >= 0, got {mate_wait_ms}")
        self.mate_wait = float(mate_wait_ms) / 1000.0
        self.max_queue = int(max_queue)
        self._metrics = metrics
        self.workers = int(workers)
        self._own_executor = executor is None
        self.executor = executor or self._new_executor()
        self._jobs = collections.deque()
        self._waiting = 0          # texts queued, not yet in a batch
        self._loop = None          # the event loop it was started on (None: not running)
        self._timer = None         # a pending max_wait_ms dispatch
        self._active = 0           # batches in the workers
        self._stopping = False
        self._idle = None          # set while nothing is queued or running

    def _new_executor(self):
        return concurrent.futures.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="embedrt-encode")

    # ------------------------------------------------------------------ state
    @property
    def queued(self) -> int:
        """Texts waiting for a batch."""
        return self._waiting

    @property
    def running(self) -> bool:
        return self._loop is not None

    def start(self) -> None:
        """Starts batching on the running event loop (idempotent)."""
        if self.running:
            return
        if self.executor is None:  # stopped before: a new worker (an app's lifespan may run again)
            self.executor = self._new_executor()
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    async def stop(self, drain: bool = True) -> None:
        """Takes no new texts, answers (``drain``) or fails the queued ones, then stops."""
        self._stopping = True
        if self._loop is None:
            return
        if drain:
            self._dispatch()              # a batch held back by max_wait_ms goes now
            while self._jobs or self._active:
                self._idle.clear()
                await self._idle.wait()
        else:
            for job in self._jobs:
                if not job.future.done():
                    job.future.set_exception(Stopping("the server is shutting down"))
            self._jobs.clear()
            self._set_waiting(0)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._own_executor:
            executor, self.executor = self.executor, None
            # a batch still running (no drain) finishes in the worker; its rows are dropped
            await self._loop.run_in_executor(None, executor.shutdown, True)
        self._loop = None

    def _set_waiting(self, n: int) -> None:
        self._waiting = n
        if self._metrics is not None:
            self._metrics.queue_depth.set(n)

    # ------------------------------------------------------------------ requests
    def submit(self, texts: list, tokens: list, key=None) -> "_Job":
        """Queues a request's texts (with their token counts); await ``job.future`` for the rows
        (a float32 array, one row per text, in order). Raises ``QueueFull`` or ``Stopping``."""
        if self._stopping:
            raise Stopping("the server is shutting down")
        if not self.running:
            self.start()
        n = len(texts)
        if self._waiting and self._waiting + n > self.max_queue:
            if self._metrics is not None:
                self._metrics.rejected.inc(n)
            raise QueueFull(f"the queue is full ({self._waiting} texts waiting, at most {self.max_queue}); "
                            "retry later")
        job = _Job(texts, tokens, key, asyncio.get_running_loop().create_future())
        if n == 0:
            job.future.set_result(None)
            return job
        self._jobs.append(job)
        self._set_waiting(self._waiting + n)
        if self._active < self.workers:
            self._schedule()
        return job

    def cancel(self, job: "_Job") -> None:
        """Drops a job's texts that are not in a batch yet (its client went away)."""
        if job.cancelled:
            return
        job.cancelled = True
        left = len(job.texts) - job.taken
        if left and job in self._jobs:
            self._jobs.remove(job)
            self._set_waiting(self._waiting - left)
            if self._metrics is not None:
                self._metrics.cancelled.inc(left)
        if not job.future.done():
            job.future.cancel()

    async def embed(self, texts: list, tokens: list, key=None) -> np.ndarray:
        """``submit`` and wait for the rows."""
        job = self.submit(texts, tokens, key)
        try:
            return await job.future
        except asyncio.CancelledError:
            self.cancel(job)
            raise

    # ------------------------------------------------------------------ the loop
    def _pending_tokens(self, key, cap=None) -> int:
        """Tokens queued of one kind (counting stops at ``cap``, default max_batch_tokens)."""
        cap = self.max_batch_tokens if cap is None else cap
        total = 0
        for job in self._jobs:
            if job.key == key:
                total += sum(job.tokens[job.taken:])
                if total >= cap:
                    break
        return total

    def _take(self, budget: int):
        """The next batch: [(job, lo, hi)], all of the first job's kind, at most `budget` tokens
        (at least one text)."""
        if not self._jobs:
            return None, []
        key = self._jobs[0].key
        parts = []
        used = 0
        taken_texts = 0
        keep = collections.deque()
        full = False
        for job in self._jobs:
            if full or job.key != key:
                keep.append(job)
                continue
            lo = hi = job.taken
            n = len(job.texts)
            while hi < n:
                t = job.tokens[hi]
                if used + t > budget and (used or hi > lo or parts):
                    full = True
                    break
                used += t
                hi += 1
            if hi > lo:
                parts.append((job, lo, hi))
                job.taken = hi
                taken_texts += hi - lo
            if hi < n:
                keep.append(job)
        self._jobs = keep
        self._set_waiting(self._waiting - taken_texts)
        return key, parts

    def _schedule(self) -> None:
        """With a worker idle: the next batches now, or when ``max_wait_ms`` (``mate_wait_ms``
        while another batch runs, if longer) after the first request has passed, unless
        ``max_batch_tokens`` are waiting already."""
        if not self._jobs:
            return
        wait = self.max_wait
        if self._active and self.mate_wait > wait:
            wait = self.mate_wait
        if wait > 0 and not self._stopping:
            first = self._jobs[0]
            left = first.t0 + wait - time.perf_counter()
            if left > 0 and self._pending_tokens(first.key) < self.max_batch_tokens:
                if self._timer is None:
                    self._timer = self._loop.call_later(left, self._on_timer)
                return
        self._dispatch()

    def _on_timer(self) -> None:
        self._timer = None
        self._schedule()

    def _dispatch(self) -> None:
        """Hands batches to the idle workers (on the event loop). With several workers idle,
        each takes its share of the queued texts of the first job's kind."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._jobs and self._active < self.workers:
            idle = self.workers - self._active
            budget = self.max_batch_tokens
            if idle > 1:
                pending = self._pending_tokens(self._jobs[0].key, budget * idle)
                budget = min(budget, max(1, -(-pending // idle)))
            key, parts = self._take(budget)
            if not parts:
                break
            texts = []
            for job, lo, hi in parts:
                texts.extend(job.texts[lo:hi])
            self._active += 1
            self._idle.clear()
            self._submit(texts, key, parts)
        if not self._jobs and not self._active:
            self._idle.set()

    def _submit(self, texts, key, parts) -> None:
        loop = self._loop
        t0 = time.perf_counter()

        def back(future):  # in the worker thread: hand the result to the event loop
            try:
                loop.call_soon_threadsafe(self._finish, future, parts, len(texts), t0)
            except RuntimeError:  # the loop is closed: nobody waits for these rows any more
                pass

        self.executor.submit(self._encode, texts, key).add_done_callback(back)

    def _finish(self, future, parts, count: int, t0: float) -> None:
        """On the event loop: each request of the batch gets its rows; then the next batch."""
        self._active -= 1
        exc = future.exception()
        if exc is not None:
            for job, _, _ in parts:
                if not job.future.done():
                    job.future.set_exception(exc)
                if job in self._jobs:
                    self._jobs.remove(job)
                    self._set_waiting(self._waiting - (len(job.texts) - job.taken))
        else:
            emb = future.result()
            m = self._metrics
            if m is not None:
                m.batch_seconds.observe(time.perf_counter() - t0)
                m.batch_size.observe(count)
                m.batch_tokens.observe(sum(sum(job.tokens[lo:hi]) for job, lo, hi in parts))
            row = 0
            for job, lo, hi in parts:
                k = hi - lo
                if not job.cancelled and not job.future.done():
                    if job.out is None:
                        job.out = np.empty((len(job.texts), emb.shape[1]), dtype=np.float32)
                    job.out[lo:hi] = emb[row:row + k]
                    job.done += k
                    if job.done == len(job.texts):
                        job.future.set_result(job.out)
                row += k
        if self._jobs:
            self._schedule()
        if not self._active and not self._jobs:
            self._idle.set()
