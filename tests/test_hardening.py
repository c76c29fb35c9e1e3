"""Hostile files, wrong-typed configs, invalid texts and threads sharing one index."""
from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import embedrt
from embedrt import _fileformat as ff
from embedrt.sdc import ResidualBinarizer, SDCIndex, sdc, sdc_topk

TINY = Path(__file__).resolve().parent / "data" / "export_corpus" / "tiny-bert"
DEEP = "[" * 5000 + "]" * 5000


# ----------------------------------------------------------------------------------------
# container files
# ----------------------------------------------------------------------------------------

def _craft(path, header, payload: bytes = b"", pad_to=None) -> Path:
    """A container file with the given header (a dict or raw bytes), a valid header checksum
    and `payload` after it (at offset `pad_to` when given)."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    prefix = struct.pack("<8sIIII", ff.MAGIC, 1, len(raw), zlib.crc32(raw) & 0xFFFFFFFF, 0)
    data = prefix + raw
    if pad_to is not None:
        data += b"\0" * (pad_to - len(data))
    path.write_bytes(data + payload)
    return path


def _header(size, sections, kind="test"):
    return {"kind": kind, "version": 1, "meta": {}, "file_size": size, "sections": sections}


def _section(**kw):
    s = {"name": "a", "dtype": "uint8", "shape": [64], "offset": 256, "nbytes": 64, "crc32": 0}
    s.update(kw)
    return s


def test_deeply_nested_header_is_a_value_error(tmp_path):
    raw = ('{"kind": "test", "version": 1, "file_size": 0, "sections": [], "meta": ' + DEEP + "}").encode()
    p = _craft(tmp_path / "deep.bin", raw)
    with pytest.raises(ValueError, match="deep.bin.*nested too deeply"):
        ff.read_file(p, "test", 1)


@pytest.mark.parametrize("field,value,match", [
    ("shape", [2 ** 80], "shape"),
    ("shape", [0, 2 ** 80], "shape"),
    ("shape", [64.0], "shape must be an integer"),
    ("shape", "64", "shape must be a list"),
    ("offset", 256.0, "offset must be an integer"),
    ("offset", "256", "offset must be an integer"),
    ("nbytes", True, "nbytes must be an integer"),
    ("crc32", None, "crc32 must be an integer"),
    ("name", 3, "name must be a string"),
])
def test_malformed_size_fields_are_value_errors_naming_them(tmp_path, field, value, match):
    size = 320
    p = _craft(tmp_path / "x.bin", _header(size, [_section(**{field: value})]), b"\1" * 64, pad_to=256)
    assert p.stat().st_size == size
    with pytest.raises(ValueError, match=match):
        ff.read_file(p, "test", 1)


@pytest.mark.parametrize("section", [
    _section(shape=[1 << 30, 8], nbytes=8 << 30),      # a small file asking for 8 GB
    _section(shape=[1 << 20], nbytes=1 << 20),
    _section(nbytes=64, shape=[64], dtype="float64"),
])
@pytest.mark.parametrize("mmap", [False, True])
def test_sections_are_checked_against_the_file_before_allocation(tmp_path, section, mmap):
    p = _craft(tmp_path / "x.bin", _header(320, [section]), b"\1" * 64, pad_to=256)
    assert p.stat().st_size < 1024
    with pytest.raises(ValueError, match="outside the file|does not match its size"):
        ff.read_file(p, "test", 1, mmap=mmap)


def test_header_fields_must_be_integers(tmp_path):
    for hdr, match in ((dict(_header(256, []), version=1.0), "version"),
                       (dict(_header(256, []), file_size="256"), "file_size"),
                       (dict(_header(256, []), sections={}), "sections")):
        p = _craft(tmp_path / "x.bin", hdr, pad_to=256)
        with pytest.raises(ValueError, match=match):
            ff.read_file(p, "test", 1)


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        idx = embedrt.BinaryIndex(16)
        idx.add(np.zeros((3, 2), np.uint8))
        idx.save(tmp_path / "b.idx")
    finally:
        os.umask(old)
    assert (tmp_path / "b.idx").stat().st_mode & 0o777 == mode
    assert ff.current_umask() == old


# ----------------------------------------------------------------------------------------
# int8 scales
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0])
@pytest.mark.parametrize("mmap", [False, True])
def test_int8_index_rejects_non_finite_scales(tmp_path, bad, mmap):
    rng = np.random.default_rng(0)
    idx = embedrt.Int8Index(8)
    idx.add(rng.standard_normal((10, 8)).astype(np.float32))
    scales = np.array(idx.scales)
    scales[3] = bad
    p = tmp_path / "i8.idx"
    ff.write_file(p, "embedrt.Int8Index", 1, {"dim": 8, "ntotal": 10},
                  {"codes": np.array(idx.codes), "scales": scales})
    with pytest.raises(ValueError, match="scale of vector 3"):
        embedrt.Int8Index.load(p, mmap=mmap)

    two = embedrt.Index(8)
    two.add(rng.standard_normal((10, 8)).astype(np.float32))
    two.save(tmp_path / "two.idx")
    f = ff.read_file(tmp_path / "two.idx", "embedrt.Index", 1)
    arrays = {k: np.array(v) for k, v in f.arrays.items()}
    arrays["int8_scales"][3] = bad
    ff.write_file(tmp_path / "two.idx", "embedrt.Index", 1, f.meta, arrays)
    with pytest.raises(ValueError, match="scale of vector 3"):
        embedrt.Index.load(tmp_path / "two.idx", mmap=mmap)


# ----------------------------------------------------------------------------------------
# SDC: padding bits, verify()
# ----------------------------------------------------------------------------------------

def _with_padding(codes, dim, rng):
    """`codes` with random values in the bits past `dim`."""
    out = np.array(codes)
    r = dim % 8
    assert r
    junk = rng.integers(1, 256, out.shape[:2], dtype=np.uint8) & np.uint8(0xFF >> r)
    out[:, :, -1] |= junk
    return out


@pytest.fixture(scope="module")
def sdc50():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 50)).astype(np.float32)
    b = ResidualBinarizer(bits=2).fit(X)
    return X, b


def test_sdc_functions_ignore_padding_bits(sdc50):
    X, b = sdc50
    rng = np.random.default_rng(2)
    clean = b.encode(X)
    dirty = _with_padding(clean, 50, rng)
    q, qd = clean[:7], dirty[:7]
    before = dirty.copy()
    want = sdc(q, clean, dim=50)
    assert not np.array_equal(sdc(qd, dirty), sdc(q, clean))  # counted without dim: differs
    np.testing.assert_array_equal(sdc(qd, dirty, dim=50), want)
    np.testing.assert_array_equal(b.sdc(qd, dirty), want)
    for got, ref in zip(sdc_topk(qd, dirty, 10, dim=50), sdc_topk(q, clean, 10, dim=50)):
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(dirty, before)  # the inputs are not modified


def test_sdc_index_ignores_padding_bits_in_add_codes_and_load(tmp_path, sdc50):
    X, b = sdc50
    rng = np.random.default_rng(3)
    clean = b.encode(X)
    dirty = _with_padding(clean, 50, rng)
    ref = SDCIndex(50, 2, binarizer=b)
    ref.add_codes(clean)
    want = ref.search(X[:20], 10)

    idx = SDCIndex(50, 2, binarizer=b)
    idx.add_codes(dirty)
    np.testing.assert_array_equal(idx.codes, clean)  # stored cleared
    for got, w in zip(idx.search(X[:20], 10), want):
        np.testing.assert_array_equal(got, w)

    # a file whose codes have padding bits set (written by another tool, or damaged)
    ref.save(tmp_path / "s.idx")
    f = ff.read_file(tmp_path / "s.idx", "SDCIndex", 1)
    arrays = {k: np.array(v) for k, v in f.arrays.items()}
    arrays["codes"] = dirty
    ff.write_file(tmp_path / "d.idx", "SDCIndex", 1, f.meta, arrays)
    for mmap in (False, True):
        loaded = SDCIndex.load(tmp_path / "d.idx", mmap=mmap)
        for got, w in zip(loaded.search(X[:20], 10), want):
            np.testing.assert_array_equal(got, w)

    two = embedrt.Index(50, coarse="sdc", rescore=None)
    two.add(X)  # fits the coarse stage's binarizer on this batch
    two.save(tmp_path / "two.idx")  # (codes without a fitted binarizer would not load)
    loaded = embedrt.Index.load(tmp_path / "two.idx")
    for got, w in zip(loaded.search(X[:20], 10), two.search(X[:20], 10)):
        np.testing.assert_array_equal(got, w)


def test_sdc_index_verify(tmp_path, sdc50):
    X, b = sdc50
    idx = SDCIndex(50, 2, binarizer=b)
    idx.add(X)
    p = tmp_path / "s.idx"
    idx.save(p)
    SDCIndex.load(p).verify()  # intact
    SDCIndex.load(p, mmap=False).verify()
    data = bytearray(p.read_bytes())
    data[-3] ^= 0x80  # in the codes section (the last one written)
    p.write_bytes(bytes(data))
    loaded = SDCIndex.load(p)  # mapped: opens, verify() finds it
    with pytest.raises(ValueError, match="checksum"):
        loaded.verify()
    with pytest.raises(ValueError, match="checksum"):
        SDCIndex.load(p, mmap=False)
    with pytest.raises(ValueError, match="checksum"):
        SDCIndex.load(p, verify=True)
    SDCIndex(50, 2).verify()  # built in memory: a no-op


# ----------------------------------------------------------------------------------------
# threads
# ----------------------------------------------------------------------------------------

@pytest.fixture
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def _run_threads(targets, timeout=60.0):
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported by the test
                errors.append(e)
        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "threads did not finish in time"
    if errors:
        raise errors[0]


def _sorted_rows(a):
    a = np.asarray(a).reshape(len(a), -1)
    return a[np.lexsort(a.T[::-1])]


def test_binary_index_concurrent_adds(fast_switching):
    rng = np.random.default_rng(4)
    for _ in range(5):
        rows = rng.integers(0, 256, (8, 150, 6), dtype=np.uint8)
        idx = embedrt.BinaryIndex(48)

        def adder(t):
            return lambda: [idx.add(rows[t, i]) for i in range(rows.shape[1])]

        _run_threads([adder(t) for t in range(8)])
        assert idx.ntotal == rows.shape[0] * rows.shape[1]
        np.testing.assert_array_equal(_sorted_rows(idx.codes), _sorted_rows(rows.reshape(-1, 6)))
        ref = embedrt.BinaryIndex(48)
        ref.add(np.array(idx.codes))
        q = rng.integers(0, 256, (5, 6), dtype=np.uint8)
        for got, want in zip(idx.search(q, 20), ref.search(q, 20)):
            np.testing.assert_array_equal(got, want)


def _check_sdc_result(q_codes, codes_now, scores, ids, scale):
    """Every (score, id) of a search is the exact SDC score of that stored code."""
    exact = sdc(q_codes, codes_now[:ids.max() + 1] if ids.size else codes_now[:0], dim=50) \
        if ids.size else None
    if ids.size:
        want = np.take_along_axis(exact, ids, axis=1).astype(np.float64) * scale
        np.testing.assert_array_equal(scores, want.astype(np.float32))
        assert (np.diff(scores, axis=1) <= 0).all()


def test_sdc_index_add_races_with_search(fast_switching):
    # 4 threads add small batches while 4 search: the search layout must end up holding every
    # row (it was once packed from one row count and marked with a later one)
    rng = np.random.default_rng(8)
    X = rng.standard_normal((1300, 50)).astype(np.float32)
    b = ResidualBinarizer(bits=2).fit(X[:300])
    codes = b.encode(X)
    queries, qc = X[:4], b.encode(X[:4])
    for _ in range(4):
        idx = SDCIndex(50, 2, binarizer=b)
        idx.add_codes(codes[:5])
        stop = threading.Event()
        results = []

        def adder(t):
            def run():
                for i in range(40):
                    start = 5 + (t * 40 + i) * 8
                    idx.add_codes(codes[start:start + 1 + (i % 8)])
            return run

        def searcher():
            while not stop.is_set():
                results.append(idx.search(queries, 7))

        searchers = [threading.Thread(target=searcher, daemon=True) for _ in range(4)]
        for t in searchers:
            t.start()
        try:
            _run_threads([adder(t) for t in range(4)])
        finally:
            stop.set()
            for t in searchers:
                t.join(30)
        want_rows = np.concatenate([codes[5 + (t * 40 + i) * 8:][:1 + (i % 8)]
                                    for t in range(4) for i in range(40)] + [codes[:5]])
        assert idx.ntotal == len(want_rows)
        final = np.array(idx.codes)
        np.testing.assert_array_equal(_sorted_rows(final), _sorted_rows(want_rows))
        for s, ids in results:  # every result seen during the adds is exact for the rows it names
            _check_sdc_result(qc, final, s, ids, b.scale)
        ref = SDCIndex(50, 2, binarizer=b)
        ref.add_codes(final)
        for got, want in zip(idx.search(X, 10), ref.search(X, 10)):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("coarse,rescore", [("binary", "int8"), ("sdc", "int8"), (None, "int8")])
def test_index_add_races_with_search(fast_switching, coarse, rescore):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((8, 40, 32)).astype(np.float32)
    idx = embedrt.Index(32, coarse=coarse, rescore=rescore)
    idx.add(X[0, :8])  # fits the sdc binarizer
    stop = threading.Event()

    def adder(t):
        def run():
            for i in range(8 if t == 0 else 0, X.shape[1]):
                idx.add(X[t, i])
        return run

    def searcher():
        while not stop.is_set():
            s, ids = idx.search(X[0, :3], 5)
            assert ids.shape == (3, min(5, len(idx))) or ids.shape[1] <= 5

    searchers = [threading.Thread(target=searcher, daemon=True) for _ in range(2)]
    for t in searchers:
        t.start()
    try:
        _run_threads([adder(t) for t in range(6)])
    finally:
        stop.set()
        for t in searchers:
            t.join(30)
    n = 6 * X.shape[1]
    assert len(idx) == n
    stored = idx.reconstruct(np.arange(n))
    ref_rows = X[:6].reshape(-1, 32)
    ref = embedrt.Int8Index(32)
    ref.add(ref_rows)
    np.testing.assert_array_equal(_sorted_rows(stored), _sorted_rows(ref.reconstruct(np.arange(n))))


def test_int8_index_concurrent_adds(fast_switching):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((8, 100, 16)).astype(np.float32)
    idx = embedrt.Int8Index(16)
    got_ids = []

    def adder(t):
        return lambda: [got_ids.append(int(idx.add(X[t, i])[0])) for i in range(X.shape[1])]

    _run_threads([adder(t) for t in range(8)])
    assert len(idx) == 800 and sorted(got_ids) == list(range(800))
    ref = embedrt.Int8Index(16)
    ref.add(X.reshape(-1, 16))
    np.testing.assert_array_equal(_sorted_rows(idx.reconstruct(np.arange(800))),
                                  _sorted_rows(ref.reconstruct(np.arange(800))))


# ----------------------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------------------

def _safetensors(path, header, payload=b""):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + payload)
    return path


@pytest.mark.parametrize("entry,match", [
    ({"dtype": "F32", "shape": [2 ** 80], "data_offsets": [0, 16]}, "does not fit"),
    ({"dtype": "F32", "shape": [0, 2 ** 80], "data_offsets": [0, 0]}, "impossible shape"),
    ({"dtype": "F32", "shape": [4], "data_offsets": ["0", "16"]}, "data_offsets"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [0.0, 16.0]}, "data_offsets"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [0]}, "data_offsets"),
    ({"dtype": "F32", "shape": ["4"], "data_offsets": [0, 16]}, "shape"),
    ({"dtype": "F32", "shape": 4, "data_offsets": [0, 16]}, "shape"),
    ({"dtype": ["F32"], "shape": [4], "data_offsets": [0, 16]}, "dtype"),
    ({"dtype": "F32", "shape": [1 << 28], "data_offsets": [0, 1 << 30]}, "does not fit"),
])
def test_safetensors_malformed_entries(tmp_path, entry, match):
    from embedrt.encoder.safetensors_io import SafetensorsError, read_safetensors

    p = _safetensors(tmp_path / "m.safetensors", {"w": entry}, b"\0" * 16)
    with pytest.raises(SafetensorsError, match=match):
        read_safetensors(p)


def test_safetensors_deep_header(tmp_path):
    from embedrt.encoder.safetensors_io import SafetensorsError, read_safetensors

    p = _safetensors(tmp_path / "m.safetensors", ('{"a": ' + DEEP + "}").encode())
    with pytest.raises(SafetensorsError, match="m.safetensors.*nested too deeply"):
        read_safetensors(p)


# ----------------------------------------------------------------------------------------
# model folders and texts
# ----------------------------------------------------------------------------------------

@pytest.fixture
def tiny(tmp_path):
    dst = tmp_path / "tiny-bert"
    shutil.copytree(TINY, dst)
    return dst


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_model_folder_deep_json(tiny):
    from embedrt.encoder.model_dir import ModelFolderError, read_model_folder

    for name in ("config.json", "modules.json", "1_Pooling/config.json", "sentence_bert_config.json"):
        original = (tiny / name).read_text()
        (tiny / name).write_text(DEEP)
        with pytest.raises(ModelFolderError, match=f"{name}: not valid JSON"):
            read_model_folder(tiny)
        (tiny / name).write_text(original)
    read_model_folder(tiny)


def test_tokenizer_deep_json(tiny):
    from embedrt.encoder.tokenize import TextTokenizer

    (tiny / "tokenizer.json").write_text('{"a": ' + DEEP + "}")
    with pytest.raises(ValueError, match="tokenizer.json"):
        TextTokenizer(tiny / "tokenizer.json")


@pytest.mark.parametrize("file,key,value,match", [
    ("1_Pooling/config.json", "word_embedding_dimension", "32",
     "'word_embedding_dimension' must be a positive integer"),
    ("1_Pooling/config.json", "word_embedding_dimension", 32.0,
     "'word_embedding_dimension' must be a positive integer"),
    ("sentence_bert_config.json", "do_lower_case", "false", "'do_lower_case' must be true or false"),
    ("sentence_bert_config.json", "do_lower_case", 0, "'do_lower_case' must be true or false"),
    ("config_sentence_transformers.json", "similarity_fn_name", ["cosine"], "'similarity_fn_name' must be a string"),
    ("config_sentence_transformers.json", "default_prompt_name", ["q"], "'default_prompt_name' must be a string"),
    ("1_Pooling/config.json", "pooling_mode", [["mean"]], "'pooling_mode' must be"),
])
def test_model_folder_field_types(tiny, file, key, value, match):
    from embedrt.encoder.model_dir import ModelFolderError, read_model_folder

    _edit_json(tiny / file, **{key: value})
    with pytest.raises(ModelFolderError, match=match):
        read_model_folder(tiny)


def test_model_folder_right_types_still_read(tiny):
    from embedrt.encoder.model_dir import read_model_folder

    _edit_json(tiny / "sentence_bert_config.json", do_lower_case=False)
    _edit_json(tiny / "1_Pooling/config.json", word_embedding_dimension=32)
    f = read_model_folder(tiny)
    assert f.do_lower_case is False and f.hidden_size == 32


def test_lone_surrogate_is_a_value_error_naming_the_text():
    from embedrt.encoder.tokenize import TextTokenizer

    for lowercase in (False, True):
        tok = TextTokenizer(TINY / "tokenizer.json", lowercase=lowercase)
        texts = ["fine", "also fine", "ok", "abcde\ud800x"]
        with pytest.raises(ValueError, match=r"sentences\[3\] is not valid Unicode \(lone surrogate at position 5\)"):
            tok.ids(texts)
        with pytest.raises(ValueError, match=r"prompt is not valid Unicode"):
            tok.count("\udfffquery: ")
        with pytest.raises(TypeError, match=r"sentences\[1\] must be a str"):
            tok.ids(["a", 3])
        assert len(tok.ids(["fine", "\u00e9t\u00e9 \U0001f600"])) == 2


# ----------------------------------------------------------------------------------------
# onnxruntime: a graph rebuilt from a config.json that does not describe it
# ----------------------------------------------------------------------------------------

def _ids(n=6, seed=7):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 600, L).astype(np.int64) for L in rng.integers(3, 20, n)]


@pytest.mark.parametrize("change", [{"num_attention_heads": 2}, {"layer_norm_eps": 0.5},
                                    {"hidden_act": "relu"}])
def test_rebuild_with_a_wrong_config_runs_the_original_graph(tiny, change, caplog):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from embedrt.encoder.ort_backend import OnnxRuntimeBackend

    onnx_path = tiny / "onnx" / "model.onnx"
    cfg = json.loads((tiny / "config.json").read_text())
    plain = OnnxRuntimeBackend(onnx_path, threads=1)
    want = plain.embed(_ids())

    good = OnnxRuntimeBackend(onnx_path, threads=1, config=cfg)
    assert good.rebuilt  # the probe accepts a config that describes the graph
    np.testing.assert_allclose(good.embed(_ids()), want, rtol=1e-4, atol=1e-5)

    bad_cfg = dict(cfg, **change)
    with caplog.at_level("WARNING", logger="embedrt"):
        bad = OnnxRuntimeBackend(onnx_path, threads=1, config=bad_cfg)
    assert not bad.rebuilt
    assert any("runs as it is" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(bad.embed(_ids()), want)


@pytest.mark.parametrize("k", [2**31, 2**63, 2**70])
def test_huge_k_is_the_whole_index(k):
    """k beyond the rows (up to and past int64) gives every row, as k = n does, not a
    binding error."""
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (40, 8), dtype=np.uint8)
    d, i = embedrt.hamming_topk(codes[:3], codes, k)
    want = embedrt.hamming_topk(codes[:3], codes, 40)
    assert np.array_equal(d, want[0]) and np.array_equal(i, want[1])
    index = embedrt.BinaryIndex(64)
    index.add(codes)
    d, i = index.search(codes[:3], k)
    assert i.shape == (3, 40) and np.array_equal(i, index.search(codes[:3], 40)[1])
    x = rng.standard_normal((40, 32)).astype(np.float32)
    sdc_index = embedrt.SDCIndex(32, bits=2)
    sdc_index.add(x)
    assert sdc_index.search(x[:2], k)[1].shape == (2, 40)
    q, db = sdc_index.binarizer.encode(x[:2]), sdc_index.binarizer.encode(x)
    assert embedrt.sdc_topk(q, db, k, dim=32)[1].shape == (2, 40)


def _misaligned(a):
    """A copy of `a` whose data starts one byte past an aligned address (the alignment of a
    tensor inside a safetensors buffer, for example)."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    view = np.frombuffer(raw.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    view[...] = a
    assert view.ctypes.data % a.dtype.itemsize != 0
    return view


def test_misaligned_arrays_are_read_as_values():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 70)).astype(np.float32)
    np.testing.assert_array_equal(embedrt.pack_bits(_misaligned(x)), embedrt.pack_bits(x))
    a = rng.integers(-127, 128, (5, 33), dtype=np.int8)
    b = rng.integers(-127, 128, (9, 33), dtype=np.int8)
    sa = rng.random(5, dtype=np.float32)
    np.testing.assert_array_equal(embedrt.int8_matmul(a, b, a_scale=_misaligned(sa)),
                                  embedrt.int8_matmul(a, b, a_scale=sa))
    ids = rng.integers(0, 2**63, 50, dtype=np.uint64)
    he = embedrt.HashEmbed(8, 100, seed=3)
    np.testing.assert_array_equal(he(_misaligned(ids)), he(ids))


# ----------------------------------------------------------------------------------------
# findings of the fuzz harnesses (tests/fuzz/)
# ----------------------------------------------------------------------------------------

def test_cli_deeply_nested_jsonl_line_is_a_value_error(tmp_path, capsys):
    from embedrt.cli import main

    p = tmp_path / "texts.jsonl"
    p.write_text('{"text": "fine"}\n{"text": ' + DEEP + "}\n")
    assert main(["encode", "-m", str(tmp_path / "no-model"), "--input", str(p)]) == 1
    assert "texts.jsonl, line 2: not valid JSON (nested too deeply)" in capsys.readouterr().err


def test_tokenizer_that_cannot_encode_is_a_value_error_naming_the_file(tiny):
    """tokenizers raises a plain Exception for an unknown token missing from the vocabulary, and
    panics (a BaseException) for a template naming a special token it does not define."""
    from embedrt.encoder.tokenize import TextTokenizer

    word_level = {"version": "1.0", "model": {"type": "WordLevel", "vocab": {"[PAD]": 0}, "unk_token": "[UNK]"}}
    (tiny / "tokenizer.json").write_text(json.dumps(word_level))
    tok = TextTokenizer(tiny / "tokenizer.json")
    with pytest.raises(ValueError, match="tokenizer.json: the tokenizer cannot encode"):
        tok.ids(["hello"])
    with pytest.raises(ValueError, match="tokenizer.json: the tokenizer cannot encode"):
        tok.count("hello")

    data = json.loads((TINY / "tokenizer.json").read_text())
    del data["post_processor"]["special_tokens"]["[SEP]"]
    (tiny / "tokenizer.json").write_text(json.dumps(data))
    tok = TextTokenizer(tiny / "tokenizer.json")
    with pytest.raises(ValueError, match="tokenizer.json: the tokenizer cannot encode"):
        tok.ids(["hello", "world"])


def _onnx_with(tmp_path, change, name="model.onnx"):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(TINY / "onnx" / name))
    change(model.graph)
    p = tmp_path / "model.onnx"
    onnx.save(model, str(p))
    return p


def test_onnx_node_with_too_few_inputs_is_not_recognized(tmp_path):
    from embedrt.encoder._native_load import NotRecognized, params_from_onnx

    def drop_gather_index(g):
        node = next(n for n in g.node if n.op_type == "Gather")
        del node.input[1:]
        node.name = "the_gather"

    p = _onnx_with(tmp_path, drop_gather_index)
    with pytest.raises(NotRecognized, match="Gather node 'the_gather': 1 inputs and 1 outputs, the operator "
                                            "takes at least 2"):
        params_from_onnx(p, None)


def test_onnx_initializer_of_undefined_type_is_not_recognized(tmp_path):
    from embedrt.encoder._native_load import NotRecognized, params_from_onnx

    def undefined_table(g):
        next(t for t in g.initializer if "word_embeddings" in t.name).data_type = 0

    p = _onnx_with(tmp_path, undefined_table)
    with pytest.raises(NotRecognized, match="cannot be read"):
        params_from_onnx(p, None)


def test_onnx_constant_cast_without_its_type_is_not_recognized(tmp_path):
    """Folding a Cast of a constant whose 'to' attribute is missing raised KeyError."""
    from embedrt.encoder._native_load import NotRecognized, params_from_onnx

    def untyped_casts(g):
        for n in g.node:
            if n.op_type == "Cast":
                del n.attribute[:]
                n.name = n.name or n.output[0]

    p = _onnx_with(tmp_path, untyped_casts, "legacy_no_folding.onnx")  # Casts of constants
    with pytest.raises(NotRecognized, match="Cast .*cannot be folded as a constant"):
        params_from_onnx(p, None)


def test_onnx_fused_embeddings_without_a_position_table_are_not_recognized(tmp_path):
    """An EmbedLayerNormalization whose position-table input is empty reached pos.shape on None."""
    from embedrt.encoder._native_load import NotRecognized, params_from_onnx

    def no_positions(g):
        node = next(n for n in g.node if n.op_type == "EmbedLayerNormalization")
        node.input[3] = ""

    p = _onnx_with(tmp_path, no_positions, "ort_optimized_fused.onnx")
    with pytest.raises(NotRecognized, match="no position embedding table"):
        params_from_onnx(p, None)


def test_onnx_cycle_of_nodes_is_not_recursion():
    """A node that reads its own output (a malformed graph) made constant folding recurse."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    from embedrt.encoder._native_load import _Graph

    node = helper.make_node("Identity", ["x"], ["x"], name="loop")
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])])
    assert _Graph(helper.make_model(graph)).const("x") is None


def test_onnx_layernorm_with_a_scalar_scale_is_not_recognized(tmp_path):
    """A LayerNormalization whose scale is a scalar reached emb_g.shape[0] (IndexError)."""
    pytest.importorskip("onnx")
    from onnx import numpy_helper

    from embedrt.encoder._native_load import NotRecognized, params_from_onnx

    def scalar_scale(g):
        g.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "one"))
        node = next(n for n in g.node if n.op_type == "LayerNormalization")
        node.input[1] = "one"
        node.name = "the_ln"

    p = _onnx_with(tmp_path, scalar_scale)
    with pytest.raises(NotRecognized, match="the_ln.*scale and bias are not float vectors of one length"):
        params_from_onnx(p, None)


def test_onnx_cast_without_its_type_after_the_embedding_gather_is_not_recognized(tmp_path):
    """A Cast with no 'to' after the embedding table's Gather raised KeyError from onnx's type map."""
    from embedrt.encoder._native_load import NotRecognized, params_from_onnx

    def dequantize_as_cast(g):
        gathered = {n.output[0] for n in g.node if n.op_type == "Gather"}
        n = next(n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in gathered)
        n.op_type = "Cast"
        n.name = "the_cast"

    p = _onnx_with(tmp_path, dequantize_as_cast, "dynamic_int8.onnx")
    with pytest.raises(NotRecognized, match="the_cast.*'to' is None, not an ONNX tensor type"):
        params_from_onnx(p, None)


@pytest.mark.parametrize("op, name", [("BiasGelu", "ort_optimized.onnx"),
                                      ("SkipLayerNormalization", "ort_optimized.onnx"),
                                      ("FusedMatMul", "ort_session_extended.onnx")])
def test_onnx_contrib_node_with_too_few_inputs_is_not_recognized(tmp_path, op, name):
    """onnxruntime's operators have no ONNX schema: one with a single input (a BiasGelu without
    its bias) was read past its inputs (IndexError)."""
    from embedrt.encoder._native_load import NotRecognized, params_from_onnx

    def truncate(g):
        node = next(n for n in g.node if n.op_type == op)
        del node.input[1:]
        node.name = "the_node"

    p = _onnx_with(tmp_path, truncate, name)
    with pytest.raises(NotRecognized, match=f"{op} node 'the_node': 1 inputs and 1 outputs, the operator "
                                            "takes at least"):
        params_from_onnx(p, None)



def _scale_by_zero(node_name, op):
    """The node named node_name becomes `op` by a new constant 0."""
    def change(g):
        from onnx import numpy_helper

        node = next(n for n in g.node if n.name == node_name)
        g.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
        node.op_type = op
        node.input[1] = "zero"
    return change


@pytest.mark.parametrize("node, op", [("/m/encoder/layer.0/intermediate/intermediate_act_fn/Div", "Div"),
                                      ("/m/encoder/layer.0/attention/self/Mul", "Div")])
def test_onnx_division_by_zero_is_not_recognized(tmp_path, node, op):
    """A GELU's Div, or a Div on the attention path, by a constant 0 raised ZeroDivisionError."""
    pytest.importorskip("onnx")
    from embedrt.encoder._native_load import NotRecognized, params_from_onnx

    p = _onnx_with(tmp_path, _scale_by_zero(node, op))
    with pytest.raises(NotRecognized, match="Div .*divides by 0.0"):
        params_from_onnx(p, None)


@pytest.mark.parametrize("kind", ["undefined", "string", "nan"])
def test_onnx_layernorm_epsilon_that_is_not_a_number_is_not_recognized(tmp_path, kind):
    """A LayerNormalization whose epsilon attribute has no value raised TypeError in float()."""
    pytest.importorskip("onnx")
    from onnx import AttributeProto

    from embedrt.encoder._native_load import NotRecognized, params_from_onnx

    def bad_epsilon(g):
        node = next(n for n in g.node if n.op_type == "LayerNormalization")
        node.name = "the_ln"
        a = next((a for a in node.attribute if a.name == "epsilon"), None) or node.attribute.add()
        a.Clear()
        a.name = "epsilon"
        if kind == "string":
            a.type, a.s = AttributeProto.STRING, b"small"
        elif kind == "nan":
            a.type, a.f = AttributeProto.FLOAT, float("nan")

    p = _onnx_with(tmp_path, bad_epsilon)
    with pytest.raises(NotRecognized, match="the_ln'?: attribute 'epsilon' is .*not a finite number"):
        params_from_onnx(p, None)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 2.5, 1e30])
def test_onnx_constant_gather_index_that_is_not_a_row_is_not_recognized(tmp_path, value):
    """A constant Gather index of infinity reached int() (OverflowError)."""
    from onnx import numpy_helper

    from embedrt.encoder._native_load import NotRecognized, params_from_onnx

    def constant_index(g):
        node = next(n for n in g.node if n.op_type == "Gather" and n.input[1] == "token_type_ids")
        node.name = "the_gather"
        g.initializer.append(numpy_helper.from_array(np.array(value, np.float32), "the_index"))
        node.input[1] = "the_index"

    p = _onnx_with(tmp_path, constant_index)
    with pytest.raises(NotRecognized, match="the_gather.*constant index .* outside the table"):
        params_from_onnx(p, None)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 0.0])
def test_onnx_position_slice_with_a_float_start_is_not_recognized(tmp_path, value):
    """A position Slice whose start is a float (infinity) reached int() (OverflowError)."""
    from onnx import numpy_helper

    from embedrt.encoder._native_load import NotRecognized, params_from_onnx

    def float_start(g):
        node = next(n for n in g.node if n.op_type == "Slice" and n.name == "/m/embeddings/Slice")
        node.name = "the_slice"
        g.initializer.append(numpy_helper.from_array(np.array([value], np.float32), "the_start"))
        node.input[1] = "the_start"

    p = _onnx_with(tmp_path, float_start, "eager_attention.onnx")
    with pytest.raises(NotRecognized, match="the_slice.*starts, axes and steps are not integers"):
        params_from_onnx(p, None)
