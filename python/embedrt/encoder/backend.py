"""What runs a model: the `Backend` protocol both engines implement, and the one policy that
chooses between them (`select_backend`).

The two backends:

- ``native`` (encoder/native.py, `NativeBackend`): embedrt's own int8 forward pass, used only
  once the load gate (encoder/gate.py) has shown on a probe that it computes what the model
  file computes;
- ``onnxruntime`` (encoder/ort_backend.py, `OnnxRuntimeBackend`): the model's ONNX graph.

The policy, for ``backend="auto"``: onnxruntime when the folder pools in a way the native
engine does not (without the prompt tokens, or several modes concatenated), or at an ISA level
where the native engine measured slower (AUTO_NATIVE_LEVELS); else the native engine when it
recognizes the model and passes the gate, else onnxruntime (the session the gate's probe ran
on, when there is one). A folder without a graph (a checkpoint only) runs natively or not at
all. ``"native"`` and ``"onnxruntime"`` force one engine and raise when it cannot run.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ._native_load import NotRecognized

logger = logging.getLogger("embedrt")

BACKENDS = ("auto", "native", "onnxruntime")

# The ISA levels at which backend="auto" runs the native int8 engine, because it measured
# faster than onnxruntime's int8 there (one thread, the corpus of the benchmarks); at the
# others auto runs onnxruntime, and backend="native" still forces the engine.
#   avx512 (VNNI): 1.77x onnxruntime int8 on an AMD Zen 5; see README, "Benchmarks"
#   avx512-vnni (Cascade Lake): the engine runs the same kernels as at avx512 (the VNNI int8
#         product, the zmm encoder ops; only the popcount families differ)
#   avx512-skx: the int8 product is the avx2 one (no VNNI), so onnxruntime
#   avx2: 0.51x on an AMD Zen 3 (its int8 matrix product has no VNNI and keeps exact 8-bit
#         operands); neon and scalar: not measured faster
AUTO_NATIVE_LEVELS = ("avx512", "avx512-vnni")


@runtime_checkable
class Backend(Protocol):
    """What `Encoder` needs of an inference engine.

    Attributes:
        kind: ``"native"`` or ``"onnxruntime"``, the engine (``Encoder.backend_info["backend"]``).
        name: what runs, e.g. ``"native-int8"`` or ``"onnxruntime"``.
        precision: the weights the engine computes with (``"int8"``, ``"fp32"``), or None when
            it runs a graph as the graph says.
        dim: the width of one token's (or, for a graph that pools, one text's) vector, or None
            when the graph leaves it symbolic.
        max_position: the longest sequence it takes (tokens), or None: what the folder says.
        skips_prompt: whether ``embed(..., skip=n)`` can leave the first n tokens out of the
            pooling (a folder with ``include_prompt=false``).
    """

    kind: str
    name: str
    precision: str | None
    dim: int | None
    max_position: int | None
    skips_prompt: bool

    def embed(self, ids: list, type_ids=None, pooling: str = "mean", skip: int = 0) -> np.ndarray:
        """Pooled (not normalized) float32 [len(ids), width] of unpadded int64 id arrays;
        pooling in sentence-transformers' names ("mean", "mean_sqrt_len_tokens", "cls", ...),
        several joined with "+" concatenated."""

    def width(self, modes: int, hidden: int | None = None) -> int | None:
        """The width of embed()'s rows for a pooling of `modes` concatenated modes, or None
        when only running a text tells. hidden: the model's hidden size as its config.json
        says, for a graph that leaves its width symbolic."""

    def set_padding(self, pad_id=None, position_padding_idx=None) -> None:
        """How a backend that pads batches pads them (the tokenizer's pad id) and numbers their
        positions (past the model's padding index, or None: 0, 1, ...)."""

    def load_report(self) -> dict:
        """{"source": the model file it runs, "engine_file": the converted engine in use or
        None, "gate": the load gate's verdict (``Verdict.as_dict()`` with "cached") or None}."""


def check_choice(backend: str, threads=None, layers=None) -> tuple:
    """Checks the arguments of a backend choice: (threads, layers) as ints or None."""
    from .._checks import as_int

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if threads is not None:
        threads = as_int(threads, "threads", minimum=1)
    if layers is not None:
        layers = as_int(layers, "layers", minimum=1)
        if backend == "onnxruntime":
            raise ValueError("layers=N needs the native backend (backend='native' or 'auto'); "
                             "onnxruntime runs the whole graph")
    return threads, layers


def _graph_for_onnxruntime(folder, onnx_file=None) -> Path:
    """The graph onnxruntime runs for this folder: its own, or for a checkpoint folder the graph
    exported from the checkpoint into the cache (``export.graph_for_onnxruntime``);
    FileNotFoundError when there is neither (or the named ``onnx_file`` is missing), ExportError
    when the checkpoint cannot be exported."""
    from .model_dir import find_onnx

    if folder.onnx_path is not None:
        return folder.onnx_path
    try:
        return find_onnx(folder.path)
    except FileNotFoundError as e:
        if onnx_file is not None:
            raise
        from .export import graph_for_onnxruntime

        folder.onnx_path = graph_for_onnxruntime(folder.path, e)
        return folder.onnx_path


def _load_native(folder, onnx_file, layers, threads, verify) -> Backend:
    """The native engine for this folder, proven by the load gate, or raises NotRecognized."""
    from .native import NativeBackend

    # the graph as resolved here (relative to the folder or its onnx/ subfolder)
    onnx_file = None if onnx_file is None else str(folder.onnx_path)
    return NativeBackend.from_model_dir(folder.path, onnx_file=onnx_file, layers=layers, threads=threads,
                                        verify=verify, pooling=folder.pooling_name,
                                        normalize=folder.normalize, longest=folder.max_seq_length)


def _isa_info() -> dict:
    """{"level", "best_level", "kernels"} of the kernels in use (empty when unknown)."""
    from .._runtime import cpu_info

    try:
        info = cpu_info()
    except Exception:  # noqa: BLE001 - informational only
        return {}
    out = {"level": info.get("isa"), "best_level": info.get("best_isa")}
    if "kernels" in info:
        out["kernels"] = info["kernels"]
    return out


def _auto_prefers_onnxruntime(folder, layers, level) -> str | None:
    """Why auto runs onnxruntime on a folder with a graph without trying the native engine, or
    None when it tries the engine."""
    if not folder.include_prompt and folder.prompts:
        return "pooling without the prompt tokens (include_prompt=false) runs on onnxruntime"
    if len(folder.pooling) > 1:
        return f"concatenated pooling modes ({folder.pooling_name}) run on onnxruntime"
    if layers is None and level not in AUTO_NATIVE_LEVELS:
        return (f"at ISA level {level} the native engine is not faster than "
                "onnxruntime, so auto runs onnxruntime (backend='native' forces the engine)")
    return None


def select_backend(folder, backend: str = "auto", *, onnx_file=None, layers=None, threads=None,
                   verify: bool = True, optimize_graph: bool = True) -> tuple:
    """The backend that runs a model folder, by the policy of the module docstring:
    (Backend, info), info being ``Encoder.backend_info`` (which backend, its name and
    precision, the reason, the gate's verdict, the source and engine files, the ISA level).
    Logs one line saying which backend runs and why (a warning when the gate rejected the
    engine).

    folder: a ModelFolder (``model_dir.read_model_folder(..., require_onnx=False)``); onnx_file:
    the graph it was read with, if one was named. layers: run only the first N layers (the
    native engine). verify: prove the native engine by the load gate. optimize_graph: let
    onnxruntime rebuild a plain BertModel graph into embedrt's leaner one.

    Raises NotRecognized (backend="native", or a folder without a graph the engine cannot run),
    ValueError (layers with an engine that cannot run them), FileNotFoundError
    (backend="onnxruntime" on a folder without a graph)."""
    threads, layers = check_choice(backend, threads, layers)
    isa = _isa_info()
    level = isa.get("level")
    # without a graph there is no onnxruntime to prefer or fall back to: auto runs the
    # native engine (from the checkpoint) or refuses
    has_graph = folder.onnx_path is not None
    chosen: Backend | None = None
    fallback = gate = None
    why = _auto_prefers_onnxruntime(folder, layers, level) if backend == "auto" and has_graph else None
    if backend == "onnxruntime":
        why = "backend='onnxruntime' was asked for"
    elif why is None:
        from .gate import GateMismatch

        try:
            chosen = _load_native(folder, onnx_file, layers, threads, bool(verify))
        except GateMismatch as e:
            why = f"the native engine does not reproduce this model ({e})"
            gate = e.verdict.as_dict()
            gate["cached"] = bool(getattr(e, "cached", False))
            fallback = e.reference
        except NotRecognized as e:
            why = f"the native engine does not recognize this model ({e})"
        if chosen is None:
            if backend == "native":
                raise NotRecognized(f"backend='native' is not possible: {why}")
            if not has_graph:  # the checkpoint's graph exported into the cache, if it can be
                from .export import fallback_graph

                folder.onnx_path, why = fallback_graph(folder.path, why)
            if folder.onnx_path is None:
                from .arch import SUPPORTED

                raise NotRecognized(
                    f"{folder.path} has no ONNX graph (onnx/model.onnx) for onnxruntime, and {why}; "
                    f"the native engine runs the families {', '.join(SUPPORTED)} from "
                    "model.safetensors and config.json")
            if layers is not None:
                raise ValueError(f"layers={layers} needs the native backend, which is not possible: {why}")
        else:
            gate = chosen.load_report()["gate"]
            why = ("the native engine reproduces this model on the load probe" if gate and gate["passed"]
                   else "backend='native' without the load probe (verify=False)" if not verify
                   else "the native engine recognizes this model")
            if backend == "native":
                why = "backend='native' was asked for; " + why
    if chosen is None:
        from .ort_backend import OnnxRuntimeBackend

        # the session the probe ran on, when there is one: the file as it is
        chosen = fallback if fallback is not None else OnnxRuntimeBackend(
            _graph_for_onnxruntime(folder, onnx_file), threads=threads,
            config=folder.config if optimize_graph else None)
    report = chosen.load_report()
    info = {"backend": chosen.kind, "name": chosen.name, "precision": chosen.precision,
            "reason": why, "gate": gate, "source": report["source"],
            "engine_file": report["engine_file"], **isa}
    log = logger.warning if gate is not None and gate.get("passed") is False else logger.info
    log("embedrt: %s runs on %s: %s", folder.path, info["name"] or info["backend"], why)
    return chosen, info
