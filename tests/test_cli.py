"""The `embedrt` command line: info, encode, export, convert."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

import embedrt
from embedrt.cli import main


def test_info(capsys):
    assert main(["info"]) == 0
    assert "isa" in capsys.readouterr().out
    assert main(["info", "--json"]) == 0
    assert "num_threads" in json.loads(capsys.readouterr().out)


def test_info_with_model(minilm_dir, capsys):
    assert main(["info", "--json", "--model", str(minilm_dir), "--backend", "onnxruntime"]) == 0
    info = json.loads(capsys.readouterr().out)["model"]
    assert info["dim"] == 384 and info["max_seq_length"] == 256 and info["normalize"] is True
    assert info["pooling"] == "mean" and "input_ids" in info["graph_inputs"]
    assert main(["info", "--model", str(minilm_dir), "--backend", "onnxruntime"]) == 0
    assert "model.dim" in capsys.readouterr().out


def test_encode_table(minilm_dir, capsys):
    assert main(["encode", "--model", str(minilm_dir), "--backend", "onnxruntime", "hello", "world"]) == 0
    out = capsys.readouterr().out
    assert "shape (2, 384) dtype float32" in out and "hello" in out


def test_encode_npy_matches_api(minilm_dir, tmp_path, capsys):
    out = tmp_path / "e.npy"
    assert main(["encode", "-m", str(minilm_dir), "--backend", "onnxruntime", "--dims", "128",
                 "--batch-size", "2", "--threads", "1", "-o", str(out), "a b", "c d", "e"]) == 0
    got = np.load(out)
    want = embedrt.Encoder(minilm_dir, backend="onnxruntime").encode(["a b", "c d", "e"], truncate_dim=128)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert main(["encode", "-m", str(minilm_dir), "--backend", "onnxruntime", "--no-normalize",
                 "-o", str(out), "a b"]) == 0
    assert abs(np.linalg.norm(np.load(out)) - 1) > 1e-3


def test_encode_inputs(minilm_dir, tmp_path, capsys, monkeypatch):
    lines = tmp_path / "t.txt"
    lines.write_text("first text\n\nsecond text\n")
    jl = tmp_path / "t.jsonl"
    jl.write_text(json.dumps({"body": "first text"}) + "\n" + json.dumps({"body": "second text"}) + "\n")
    base = ["encode", "-m", str(minilm_dir), "--backend", "onnxruntime"]
    assert main(base + ["--input", str(lines), "-o", str(tmp_path / "a.npy")]) == 0
    assert main(base + ["--input", str(jl), "--field", "body", "-o", str(tmp_path / "b.jsonl")]) == 0
    a = np.load(tmp_path / "a.npy")
    rows = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert a.shape == (2, 384) and [r["text"] for r in rows] == ["first text", "second text"]
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), a, atol=1e-6)
    monkeypatch.setattr(sys, "stdin", io.StringIO("first text\nsecond text\n"))
    assert main(base + ["--input", "-", "-o", str(tmp_path / "c.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "c.npy"), a, atol=1e-6)
    capsys.readouterr()
    assert main(base + ["--input", str(jl), "--input-format", "jsonl", "--field", "nope"]) == 1
    assert "nope" in capsys.readouterr().err


def test_encode_precision(minilm_dir, tmp_path):
    pytest.importorskip("embedrt.quantize", reason="embedrt.quantize is not in this build")
    out = tmp_path / "b.npy"
    assert main(["encode", "-m", str(minilm_dir), "--backend", "onnxruntime", "--precision", "ubinary",
                 "-o", str(out), "x"]) == 0
    got = np.load(out)
    assert got.dtype == np.uint8 and got.shape == (1, 48)


def test_errors_and_exit_codes(minilm_dir, tmp_path, capsys):
    assert main(["encode", "-m", str(tmp_path / "missing"), "x"]) == 1
    assert "missing" in capsys.readouterr().err
    assert main(["encode", "-m", str(minilm_dir), "--backend", "onnxruntime"]) == 2  # no texts
    assert main(["encode", "-m", str(minilm_dir), "--backend", "onnxruntime", "-o", "x.csv", "a"]) == 2
    assert main(["encode", "-m", str(minilm_dir), "--backend", "onnxruntime", "--dims", "999", "a"]) == 1
    assert "truncate_dim" in capsys.readouterr().err
    for opt in (["--batch-size", "0"], ["--dims", "0"], ["--threads", "0"], ["--max-seq-length", "1"]):
        assert main(["encode", "-m", str(minilm_dir), *opt, "a"]) == 2, opt  # a bad option value
        assert opt[0] in capsys.readouterr().err
    # --output-format npy writes the file as named
    out = tmp_path / "vectors"
    assert main(["encode", "-m", str(minilm_dir), "--backend", "onnxruntime", "-o", str(out),
                 "--output-format", "npy", "a"]) == 0
    assert out.is_file() and not (tmp_path / "vectors.npy").exists()
    assert f"wrote {out}:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["encode", "--precision", "int4", "a"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["nope"])
    assert e.value.code == 2
    assert main([]) == 2


def test_help_has_examples(capsys):
    for cmd in ("encode", "export", "convert"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "example" in capsys.readouterr().out


def test_export_command(tmp_path, capsys):
    from test_export import make_tiny_checkpoint

    src = make_tiny_checkpoint(tmp_path / "ckpt")
    assert main(["export", str(src), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "onnx" / "model.onnx").is_file()
    assert main(["export", str(src), str(tmp_path / "out")]) == 1  # exists
    assert "exists" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope"), str(tmp_path / "o2")]) == 1


def test_convert_command(minilm_dir, tmp_path, capsys):
    out = tmp_path / "packed.embedrt"
    assert main(["convert", str(minilm_dir), "-o", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "nope")]) == 1
    assert "nope" in capsys.readouterr().err


def test_console_entry_point_runs(minilm_dir):
    from conftest import subprocess_env

    env = subprocess_env()
    r = subprocess.run([sys.executable, "-m", "embedrt.cli", "encode", "-m", str(minilm_dir), "hi"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "shape (1, 384)" in r.stdout


def test_small_jobs_take_the_native_engine_wherever_it_is_proven(minilm_dir, monkeypatch):
    """At a level where auto's table prefers onnxruntime, a small `encode` job still runs on the
    proven native engine (its cached start is the fastest); a large one follows the table."""
    import argparse

    from embedrt.cli import _SMALL_JOB, _encoder_for
    from embedrt.encoder import backend

    monkeypatch.setattr(backend, "AUTO_NATIVE_LEVELS", ())
    args = argparse.Namespace(model=str(minilm_dir), backend="auto", threads=None,
                              max_seq_length=None, onnx_file=None)
    assert _encoder_for(args, 2).backend_info["backend"] == "native"
    assert _encoder_for(args, _SMALL_JOB + 1).backend_info["backend"] == "onnxruntime"
    args.backend = "onnxruntime"
    assert _encoder_for(args, 2).backend_info["backend"] == "onnxruntime"
