"""``embedrt serve``: an OpenAI-compatible embedding server with dynamic batching.

    from embedrt.serve import create_app
    app = create_app("./all-MiniLM-L6-v2")        # an ASGI app (Starlette); run it with uvicorn

Needs the ``serve`` extra: ``pip install "embedrt[serve]"`` (starlette and uvicorn).
"""
from __future__ import annotations

from .app import MAX_INPUTS, TRUNCATED_HEADER, ApiError, create_app, serve
from .batcher import Batcher, QueueFull, Stopping

__all__ = ["create_app", "serve", "Batcher", "QueueFull", "Stopping", "ApiError", "MAX_INPUTS",
           "TRUNCATED_HEADER"]
