"""A small Prometheus registry (counters, gauges, histograms) and its text exposition format.

The server's metrics are few and fixed, so embedrt keeps its own dependency-free registry
instead of requiring ``prometheus_client``. Everything runs on the event loop's thread.
"""
from __future__ import annotations

import math

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def _fmt(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple, values: tuple, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labels: tuple = ()):
        self.name = name
        self.help = help
        self.label_names = tuple(labels)

    def _header(self) -> list:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name, help, labels=()):
        super().__init__(name, help, labels)
        self._values = {} if labels else {(): 0}

    def inc(self, amount=1, *labels) -> None:
        self._values[labels] = self._values.get(labels, 0) + amount

    def value(self, *labels):
        return self._values.get(labels, 0)

    def render(self) -> list:
        lines = self._header()
        for key in sorted(self._values):
            lines.append(f"{self.name}{_labels(self.label_names, key)} {_fmt(self._values[key])}")
        return lines


class Gauge(_Metric):
    kind = "gauge"

    def __init__(self, name, help):
        super().__init__(name, help)
        self._value = 0

    def set(self, value) -> None:
        self._value = value

    def inc(self, amount=1) -> None:
        self._value += amount

    def dec(self, amount=1) -> None:
        self._value -= amount

    @property
    def value(self):
        return self._value

    def render(self) -> list:
        return self._header() + [f"{self.name} {_fmt(self._value)}"]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name, help, buckets):
        super().__init__(name, help)
        self.buckets = tuple(float(b) for b in buckets)
        self._counts = [0] * len(self.buckets)
        self._sum = 0.0
        self._count = 0

    def observe(self, value) -> None:
        self._sum += value
        self._count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self._counts[i] += 1
                break

    @property
    def count(self) -> int:
        return self._count

    def render(self) -> list:
        lines = self._header()
        running = 0
        for bound, n in zip(self.buckets, self._counts):
            running += n
            lines.append(f'{self.name}_bucket{{le="{_fmt(bound)}"}} {running}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self._count}')
        lines.append(f"{self.name}_sum {_fmt(self._sum)}")
        lines.append(f"{self.name}_count {self._count}")
        return lines


class ServerMetrics:
    """The metrics of one app: requests, inputs, tokens, batches, queue depth, latency."""

    def __init__(self):
        self.requests = Counter("embedrt_requests_total", "HTTP requests by endpoint and status code.",
                                ("endpoint", "status"))
        self.inputs = Counter("embedrt_inputs_total", "Texts embedded (answered requests).")
        self.tokens = Counter("embedrt_tokens_total", "Tokens embedded, special tokens included, after truncation.")
        self.truncated = Counter("embedrt_truncated_inputs_total", "Texts truncated at the model's token limit.")
        self.rejected = Counter("embedrt_rejected_inputs_total",
                                "Texts refused because the queue was full or the server was stopping.")
        self.cancelled = Counter("embedrt_cancelled_inputs_total",
                                 "Queued texts dropped because their client disconnected.")
        self.batch_size = Histogram("embedrt_batch_size", "Texts per encoder batch.", _BATCH_BUCKETS)
        self.batch_tokens = Histogram("embedrt_batch_tokens", "Tokens per encoder batch.",
                                      tuple(b * 16 for b in _BATCH_BUCKETS))
        self.batch_seconds = Histogram("embedrt_batch_duration_seconds", "Time of one encoder batch.",
                                       _LATENCY_BUCKETS)
        self.queue_depth = Gauge("embedrt_queue_depth", "Texts waiting for the encoder.")
        self.in_flight = Gauge("embedrt_requests_in_flight", "Embedding requests being answered.")
        self.loaded = Gauge("embedrt_model_loaded", "1 once the model is loaded.")
        self.latency = Histogram("embedrt_request_duration_seconds",
                                 "Time from a request's arrival to its answer (embedding endpoints).",
                                 _LATENCY_BUCKETS)

    def all(self) -> list:
        return [self.requests, self.inputs, self.tokens, self.truncated, self.rejected, self.cancelled,
                self.batch_size, self.batch_tokens, self.batch_seconds, self.queue_depth,
                self.in_flight, self.loaded, self.latency]

    def render(self) -> str:
        lines = []
        for metric in self.all():
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
