"""The load gate (the native engine proves each model against the file before it is used) and
the converted-engine cache that keeps its verdict."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import embedrt
from embedrt.encoder import NotRecognized, gate, native

TINY = Path(__file__).resolve().parent / "data" / "export_corpus" / "tiny-bert"

pytestmark = pytest.mark.usefixtures("auto_native")


def _tiny_copy(tmp_path, monkeypatch, graph="model.onnx"):
    if not (TINY / "onnx" / graph).is_file():
        pytest.skip("the export corpus (tests/data/export_corpus) is not present")
    monkeypatch.setenv("EMBEDRT_CACHE_DIR", str(tmp_path / "cache"))
    dest = tmp_path / "tiny-bert"
    shutil.copytree(TINY, dest, ignore=shutil.ignore_patterns("onnx"))
    (dest / "onnx").mkdir()
    shutil.copy2(TINY / "onnx" / graph, dest / "onnx" / "model.onnx")
    return dest


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A writable copy of the tiny corpus model (its default graph only) and a fresh cache."""
    return _tiny_copy(tmp_path, monkeypatch)


def _texts():
    return [str(t) for t in np.load(TINY / "reference.npz")["texts"]]


def _forbid_build(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("the model was read and probed again")
    monkeypatch.setattr(native, "_build", fail)


def test_gate_passes_and_is_cached(tiny, monkeypatch):
    enc = embedrt.Encoder(tiny)
    info = enc.backend_info
    assert info["backend"] == "native" and info["precision"] == "int8"
    g = info["gate"]
    assert g["passed"] is True and g["reference"] == "onnxruntime" and g["cached"] is False
    assert g["fp32_max_rel"] <= gate.FP32_MAX_REL and g["int8_min_cos"] >= gate.INT8_MIN_COS
    assert g["probe_tokens"] > 64  # lengths 1, 3, 6, 13 and the longest (64)
    engine_file = Path(info["engine_file"])
    assert engine_file == tiny / "embedrt" / "model.int8.embedrt" and engine_file.is_file()
    assert "gate=passed" in repr(enc) and info["level"] == embedrt.cpu_info()["isa"]
    want = enc.encode(_texts())

    _forbid_build(monkeypatch)  # the second start reads the engine and its verdict
    again = embedrt.Encoder(tiny)
    assert again.backend_info["gate"]["cached"] is True
    assert again.backend_info["engine_file"] == str(engine_file)
    np.testing.assert_array_equal(again.encode(_texts()), want)


def test_changed_source_is_converted_again(tiny, monkeypatch):
    embedrt.Encoder(tiny)
    engine = tiny / "embedrt" / "model.int8.embedrt"
    stamp = engine.stat().st_mtime_ns
    # a copy of the folder (new times, same bytes) still uses its engine: decided by the digest
    copy = tiny.parent / "copy"
    shutil.copytree(tiny, copy)
    os.utime(copy / "onnx" / "model.onnx", ns=(1, 1))
    calls = []
    build = native._build
    monkeypatch.setattr(native, "_build", lambda *a, **k: calls.append(1) or build(*a, **k))
    assert embedrt.Encoder(copy).backend_info["gate"]["cached"] is True and not calls
    # another graph under the same name: read, probed and converted again
    shutil.copy2(TINY / "onnx" / "external_data.onnx", tiny / "onnx" / "model.onnx")
    shutil.copy2(TINY / "onnx" / "external_data.onnx.data", tiny / "onnx" / "model.onnx.data")
    import onnx

    m = onnx.load(str(tiny / "onnx" / "model.onnx"), load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "model.onnx.data"
    onnx.save(m, str(tiny / "onnx" / "model.onnx"))
    enc = embedrt.Encoder(tiny)
    assert calls and enc.backend_info["gate"]["cached"] is False
    assert engine.stat().st_mtime_ns != stamp


def test_a_graphs_verdict_follows_its_config_json(tiny, monkeypatch):
    """The engine reads a graph's family from config.json: a refusal kept for one config.json
    holds only while it is unchanged, and an engine converted under it too."""
    good = (tiny / "config.json").read_text()
    (tiny / "config.json").write_text(json.dumps(dict(json.loads(good), model_type="funnel")))
    assert embedrt.Encoder(tiny).backend_info["backend"] == "onnxruntime"
    calls = []
    build = native._build
    monkeypatch.setattr(native, "_build", lambda *a, **k: calls.append(1) or build(*a, **k))
    refused = embedrt.Encoder(tiny).backend_info  # the kept refusal: nothing is read again
    assert refused["backend"] == "onnxruntime" and "funnel" in refused["reason"] and not calls
    (tiny / "config.json").write_text(good)  # fixed: the verdict is decided again
    info = embedrt.Encoder(tiny).backend_info
    assert info["backend"] == "native" and info["gate"]["passed"] is True and calls
    assert embedrt.Encoder(tiny).backend_info["gate"]["cached"] is True and len(calls) == 1
    (tiny / "config.json").write_text(json.dumps(dict(json.loads(good), note="edited")))
    assert embedrt.Encoder(tiny).backend_info["gate"]["cached"] is False and len(calls) == 2


def test_read_only_folder_keeps_its_engine_in_the_user_cache(tiny, tmp_path):
    os.chmod(tiny, 0o555)
    try:
        enc = embedrt.Encoder(tiny)
        path = Path(enc.backend_info["engine_file"])
        assert path.parent == tmp_path / "cache" / "engines" and path.is_file()
        assert not (tiny / "embedrt").exists()
        assert embedrt.Encoder(tiny).backend_info["gate"]["cached"] is True
    finally:
        os.chmod(tiny, 0o755)


# What a misreading recogniser could produce: each must be caught by the probe.
def _zero_bias(cfg, p):
    p["0.up_b"] = np.zeros_like(p["0.up_b"])


def _scale_gamma(cfg, p):
    p["1.ln2_g"] = p["1.ln2_g"] * np.float32(1.05)


def _drop_type_row(cfg, p):
    p["type"] = np.zeros_like(p["type"])


def _one_weight(cfg, p):
    p["1.down_w"] = p["1.down_w"].copy()
    p["1.down_w"][3, 5] += np.float32(0.5)


def _epsilon(cfg, p):
    cfg["eps"] = 1e-2


def _value_scale(cfg, p):
    p["0.v_w"] = p["0.v_w"] * np.float32(0.98)


def _misread_with(monkeypatch, corrupt):
    """The recogniser returns what it reads, then altered by corrupt(cfg, params)."""
    real = native.params_from_onnx

    def misread(path, cfg):
        cfg2, params = real(path, cfg)
        params = dict(params)
        corrupt(cfg2, params)
        return cfg2, params

    monkeypatch.setattr(native, "params_from_onnx", misread)


CORRUPTIONS = [_zero_bias, _scale_gamma, _drop_type_row, _one_weight, _epsilon, _value_scale]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__.strip("_"))
def test_gate_catches_a_misread_weight(tiny, monkeypatch, caplog, corrupt):
    _misread_with(monkeypatch, corrupt)
    with pytest.raises(NotRecognized, match=r"deviates from onnxruntime by [0-9.e-]+"):
        embedrt.Encoder(tiny, backend="native")
    with caplog.at_level(logging.WARNING, logger="embedrt"):
        enc = embedrt.Encoder(tiny)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "does not reproduce" in warnings[0] and "deviates" in warnings[0]
    info = enc.backend_info
    assert info["backend"] == "onnxruntime" and info["gate"]["passed"] is False
    assert info["gate"]["fp32_max_rel"] > gate.FP32_MAX_REL
    ref = np.load(TINY / "reference.npz")["embeddings"]
    emb = enc.encode(_texts())
    assert (emb * ref).sum(1).min() >= 0.9999
    assert not (tiny / "embedrt").exists()  # nothing converted


@pytest.mark.parametrize("graph", ["dynamic_int8.onnx", "qdq_int8.onnx"])
@pytest.mark.parametrize("corrupt", [_zero_bias, _value_scale, _one_weight],
                         ids=lambda f: f.__name__.strip("_"))
def test_int8_graph_is_proven_on_its_float_twin(tmp_path, monkeypatch, graph, corrupt):
    """An int8 graph's own rounding hides small misreadings; its float twin does not."""
    folder = _tiny_copy(tmp_path, monkeypatch, graph)
    b = native.NativeBackend.from_model_dir(folder, cache=False)
    v = b.verdict
    assert v.passed is True and "twin" in v.reference and v.extra["graph_file_precision"] == "int8"
    assert v.fp32_max_rel <= gate.FP32_MAX_REL and v.int8_min_cos >= gate.INT8_MIN_COS
    _misread_with(monkeypatch, corrupt)
    with pytest.raises(gate.GateMismatch, match="float twin"):
        native.NativeBackend.from_model_dir(folder, cache=False)


def test_float_twin_undoes_the_quantized_products():
    onnx = pytest.importorskip("onnx")
    from embedrt.encoder.onnx_twin import float_twin

    for name in ("dynamic_int8.onnx", "dynamic_int8_opset14.onnx", "qdq_int8.onnx"):
        path = TINY / "onnx" / name
        if not path.is_file():
            pytest.skip("the export corpus is not present")
        twin = float_twin(onnx.load(str(path)))
        ops = {n.op_type for n in twin.graph.node}
        assert not ops & {"MatMulInteger", "DynamicQuantizeLinear", "QuantizeLinear",
                          "DequantizeLinear"}, (name, ops)
    # a quantized operation it does not know: no twin, so no proof
    m = onnx.load(str(TINY / "onnx" / "dynamic_int8.onnx"))
    for n in m.graph.node:
        if n.op_type == "MatMulInteger":
            n.op_type = "QLinearMatMul"
            break
    assert float_twin(m) is None


def test_rejection_is_remembered(tiny, monkeypatch, caplog):
    real = native.params_from_onnx
    monkeypatch.setattr(native, "params_from_onnx",
                        lambda path, cfg: (lambda c, p: (c, dict(p, type=np.zeros_like(p["type"]))))(
                            *real(path, cfg)))
    embedrt.Encoder(tiny)
    build = native._build
    _forbid_build(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="embedrt"):
        enc = embedrt.Encoder(tiny)
    assert enc.backend_info["backend"] == "onnxruntime"
    assert enc.backend_info["gate"]["cached"] is True and enc.backend_info["gate"]["passed"] is False
    assert any("deviates" in r.getMessage() for r in caplog.records)
    with pytest.raises(NotRecognized, match="deviates"):
        embedrt.Encoder(tiny, backend="native")
    # without the gate the engine is built (and says it was not verified); the auto_native
    # fixture's patch stays, so that auto chooses the engine at every ISA level
    monkeypatch.setattr(native, "params_from_onnx", real)
    monkeypatch.setattr(native, "_build", build)
    enc = embedrt.Encoder(tiny, verify=False)
    assert enc.backend_info["backend"] == "native"
    assert enc.backend_info["gate"]["passed"] is None and "verify=False" in enc.backend_info["reason"]


def test_refusal_is_remembered(tiny, monkeypatch):
    def refuse(path, cfg):
        raise NotRecognized("no BERT structure here (test)")

    monkeypatch.setattr(native, "params_from_onnx", refuse)
    assert embedrt.Encoder(tiny).backend_info["backend"] == "onnxruntime"
    _forbid_build(monkeypatch)
    enc = embedrt.Encoder(tiny)
    assert enc.backend_info["backend"] == "onnxruntime" and "no BERT structure" in enc.backend_info["reason"]


def test_unverified_engine_is_proven_before_use(tiny, monkeypatch):
    embedrt.Encoder(tiny, verify=False)
    engine = tiny / "embedrt" / "model.int8.embedrt"
    assert engine.is_file()
    enc = embedrt.Encoder(tiny)  # verify=True: the unproven engine is not trusted
    assert enc.backend_info["gate"]["passed"] is True and enc.backend_info["gate"]["cached"] is False


def test_corrupted_engine_file_is_rebuilt(tiny, caplog):
    embedrt.Encoder(tiny)
    engine = tiny / "embedrt" / "model.int8.embedrt"
    data = bytearray(engine.read_bytes())
    data[len(data) // 2] ^= 0x55
    engine.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="embedrt"):
        enc = embedrt.Encoder(tiny)
    assert any("checksum" in r.getMessage() for r in caplog.records)
    assert enc.backend_info["backend"] == "native" and enc.backend_info["gate"]["cached"] is False


def test_hostile_engine_file_is_refused_without_allocating(tmp_path):
    """A small converted file claiming millions of layers is refused before anything is sized
    by it."""
    import resource

    from embedrt._fileformat import write_file

    model = tmp_path / "m"
    (model / "embedrt").mkdir(parents=True)
    h = 8
    cfg = {"vocab": 10, "hidden": h, "heads": 2, "intermediate": 16, "layers": 3_000_000,
           "max_position": 8, "type_vocab": 1}
    arrays = {"word_embeddings": np.zeros((10, h), np.float32),
              "position_embeddings": np.zeros((8, h), np.float32),
              "token_type_embeddings": np.zeros((1, h), np.float32),
              "embeddings_ln_g": np.ones(h, np.float32), "embeddings_ln_b": np.zeros(h, np.float32)}
    write_file(model / "embedrt" / "model.int8.embedrt", native.FILE_KIND, native.FILE_VERSION,
               {"config": cfg, "eps": 1e-12, "precision": "int8", "source": "model.onnx"}, arrays)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match="3000000 layers"):
        native.NativeBackend.from_model_dir(model)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


def test_safetensors_checkpoint_is_proven_against_numpy(tmp_path, monkeypatch):
    from test_export import make_tiny_checkpoint

    monkeypatch.setenv("EMBEDRT_CACHE_DIR", str(tmp_path / "cache"))
    src = make_tiny_checkpoint(tmp_path / "ckpt")
    b = native.NativeBackend.from_model_dir(src)
    assert b.verdict.passed is True and b.verdict.reference == "numpy"
    assert b.verdict.fp32_max_rel <= gate.FP32_MAX_REL
    assert b.load_info["engine_file"] == str(src / "embedrt" / "model-safetensors.int8.embedrt")

    # the numpy reference reads the same tensors by name, so what it proves is the engine's
    # arithmetic and packing: an engine array that differs from the checkpoint is caught
    real = native.prepare_arrays

    def mispacked(cfg, params, precision, stats=None):
        out = real(cfg, params, precision, stats)
        out["0.attn_out.bias"] = np.zeros_like(out["0.attn_out.bias"])
        return out

    monkeypatch.setattr(native, "prepare_arrays", mispacked)
    with pytest.raises(gate.GateMismatch, match="deviates from numpy"):
        native.NativeBackend.from_model_dir(src, cache=False)


def test_probe_sequences():
    seqs = gate.probe_sequences(500, 64, (2, 3))
    assert [len(s) for s in seqs] == [1, 3, 6, 13, 64]
    assert all(s[0] == 2 and s[-1] == 3 for s in seqs[1:])
    assert all(((s >= 0) & (s < 500)).all() for s in seqs)
    assert [len(s) for s in gate.probe_sequences(500, 4)] == [1, 3, 4]
    again = gate.probe_sequences(500, 64, (2, 3))
    assert all(np.array_equal(a, b) for a, b in zip(seqs, again))


def test_deviation():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert gate.deviation(a, a, normalize=True) == (0.0, 1.0)
    rel, cos = gate.deviation(a * 1.01, a, normalize=False)
    assert abs(rel - 0.01) < 1e-12 and abs(cos - 1.0) < 1e-12
    assert gate.deviation(a * 1.01, a, normalize=True)[0] < 1e-12
    assert gate.deviation(np.array([[np.nan, 0.0]]), a[:1], normalize=True) == (float("inf"), -1.0)


def test_minilm_gate(minilm_dir):
    """The shared model's fp32 export and its dynamic-int8 quantization pass the gate."""
    enc = embedrt.Encoder(minilm_dir)
    g = enc.backend_info["gate"]
    assert enc.backend_info["backend"] == "native" and g["passed"] is True
    assert g["fp32_max_rel"] <= gate.FP32_MAX_REL and g["int8_min_cos"] >= gate.INT8_MIN_COS
    q = embedrt.Encoder(minilm_dir, onnx_file="onnx/model_qint8_avx512_vnni.onnx")
    g = q.backend_info["gate"]
    assert q.backend_info["backend"] == "native" and g["graph_file_precision"] == "int8", g
    assert "twin" in g["reference"] and g["fp32_max_rel"] <= gate.FP32_MAX_REL
    assert g["int8_min_cos"] >= gate.INT8_MIN_COS
    assert g["int8_min_cos_file"] >= gate.LOW_PRECISION_MIN_COS["int8"]
    # a cached load reports the same measurements
    again = embedrt.Encoder(minilm_dir, onnx_file="onnx/model_qint8_avx512_vnni.onnx").backend_info["gate"]
    assert again["cached"] is True
    assert {k: v for k, v in again.items() if k != "cached"} == {k: v for k, v in g.items() if k != "cached"}


def test_auto_follows_the_level_table(tiny, monkeypatch, caplog):
    from embedrt.encoder import backend

    monkeypatch.setattr(backend, "AUTO_NATIVE_LEVELS", ())
    with caplog.at_level(logging.INFO, logger="embedrt"):
        enc = embedrt.Encoder(tiny)
    info = enc.backend_info
    assert info["backend"] == "onnxruntime" and "not faster" in info["reason"]
    assert [r.getMessage() for r in caplog.records if "not faster" in r.getMessage()]
    assert embedrt.Encoder(tiny, backend="native").backend_info["backend"] == "native"
    assert embedrt.Encoder(tiny, layers=1).backend_info["backend"] == "native"  # only native exits early


def test_cli_info_shows_the_choice(tiny, capsys):
    from embedrt.cli import main

    assert main(["info", "--json", "--model", str(tiny)]) == 0
    info = json.loads(capsys.readouterr().out)["model"]["backend_info"]
    assert info["backend"] == "native" and info["gate"]["passed"] is True
    assert main(["info", "--model", str(tiny)]) == 0
    out = capsys.readouterr().out
    assert "model.backend_reason" in out and "model.gate" in out


def test_deep_json_in_config_is_not_recognized(tmp_path):
    from embedrt.encoder._native_load import read_hf_config

    (tmp_path / "config.json").write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(NotRecognized, match="config.json"):
        read_hf_config(tmp_path)
