"""quantize() against sentence-transformers (when importable) and a numpy reference."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from embedrt import quantize

FORMATS = ["float32", "int8", "uint8", "binary", "ubinary"]


def reference(x, precision, ranges=None, calibration=None):
    """A plain restatement of sentence-transformers' quantize_embeddings."""
    if precision == "float32":
        return x.astype(np.float32)
    if precision in ("int8", "uint8"):
        if ranges is None:
            cal = x if calibration is None else calibration
            ranges = np.vstack((cal.min(axis=0), cal.max(axis=0)))
        ranges = ranges.astype(np.float32)
        steps = (ranges[1] - ranges[0]) / 255
        steps = np.where(steps == 0, 1, steps)
        q = np.clip(np.floor((x - ranges[0]) / steps), 0, 255)
        return q.astype(np.uint8) if precision == "uint8" else (q - 128).astype(np.int8)
    bits = np.zeros(x.shape[:-1] + ((x.shape[-1] + 7) // 8,), np.uint8)
    for j in range(x.shape[-1]):
        bits[..., j // 8] |= (x[..., j] > 0).astype(np.uint8) << (7 - j % 8)
    if precision == "ubinary":
        return bits
    return (bits.astype(np.int16) - 128).astype(np.int8)


def data(seed=0, n=150, d=77, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(dtype)
    x[0, :5] = 0.0
    x[1] = 0.0
    return x


def check_equal(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("precision", FORMATS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_numpy_reference(precision, dtype):
    x = data(dtype=dtype)
    check_equal(quantize(x, precision), reference(x, precision))
    if precision in ("int8", "uint8"):
        cal = data(seed=1, n=300, dtype=dtype)
        check_equal(quantize(x, precision, calibration_embeddings=cal), reference(x, precision, calibration=cal))
        ranges = np.vstack((np.full(77, -1.0), np.full(77, 1.5))).astype(np.float32)
        check_equal(quantize(x, precision, ranges=ranges), reference(x, precision, ranges=ranges))


@pytest.mark.parametrize("precision", FORMATS)
def test_sentence_transformers(precision):
    st_quant = pytest.importorskip("sentence_transformers.util.quantization")
    for x in (data(), data(seed=3, n=10, d=384), data(seed=4, n=130, d=8, dtype=np.float64)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = st_quant.quantize_embeddings(x, precision)
        check_equal(quantize(x, precision), want)
    if precision in ("int8", "uint8"):
        x, cal = data(n=5), data(seed=9, n=200)
        check_equal(quantize(x, precision, calibration_embeddings=cal),
                    st_quant.quantize_embeddings(x, precision, calibration_embeddings=cal))
        ranges = np.vstack((cal.min(0), cal.max(0)))
        check_equal(quantize(x[0], precision, ranges=ranges),
                    st_quant.quantize_embeddings(x[0], precision, ranges=ranges))
    else:
        check_equal(quantize(data()[0], precision), st_quant.quantize_embeddings(data()[0], precision))


def test_float16_and_empty():
    x = data()
    check_equal(quantize(x, "float16"), x.astype(np.float16))
    e = np.zeros((0, 20), np.float32)
    assert quantize(e, "int8").shape == (0, 20)
    assert quantize(e, "ubinary").shape == (0, 3) and quantize(e, "ubinary").dtype == np.uint8
    assert quantize(e, "binary").dtype == np.int8
    codes, scales = quantize(e, "int8_sym")
    assert codes.shape == (0, 20) and scales.shape == (0,)


def test_int8_sym():
    x = data()
    codes, scales = quantize(x, "int8_sym")
    assert codes.dtype == np.int8 and scales.dtype == np.float32 and scales.shape == (150,)
    amax = np.abs(x).max(axis=1)
    want_scales = (amax / np.float32(127)).astype(np.float32)
    np.testing.assert_array_equal(scales, want_scales)
    safe = np.where(want_scales > 0, want_scales, 1).astype(np.float32)
    want = np.clip(np.rint(x / safe[:, None]), -127, 127).astype(np.int8)
    np.testing.assert_array_equal(codes, want)
    assert codes.min() >= -127
    assert scales[1] == 0 and (codes[1] == 0).all()
    # reconstruction error within half a step
    err = np.abs(codes * scales[:, None] - x)
    assert (err <= scales[:, None] * 0.5 + 1e-6).all()
    # each row's largest magnitude maps to +-127
    nz = scales > 0
    assert (np.abs(codes[nz]).max(axis=1) == 127).all()
    c1, s1 = quantize(x[5], "int8_sym")
    np.testing.assert_array_equal(c1, codes[5])
    assert s1 == scales[5]


def test_bad_input():
    x = data()
    bad = x.copy()
    bad[3, 3] = np.nan
    for p in FORMATS + ["int8_sym", "float16"]:
        with pytest.raises(ValueError, match="NaN"):
            quantize(bad, p)
    bad[3, 3] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        quantize(bad, "int8")
    with pytest.raises(TypeError):
        quantize(x.astype(np.int8), "int8")
    with pytest.raises(ValueError, match="precision"):
        quantize(x, "int4")
    with pytest.raises(ValueError, match="single"):
        quantize(x[:1], "int8")
    with pytest.raises(ValueError, match="ranges"):
        quantize(x, "int8", ranges=np.zeros((2, 5), np.float32))
    cal = x.copy()
    cal[0, 0] = np.nan
    with pytest.raises(ValueError, match="calibration"):
        quantize(x, "int8", calibration_embeddings=cal)
