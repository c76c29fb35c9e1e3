"""embedrt.Index with multi-bit binary codes (SDC) as the coarse stage."""
import numpy as np
import pytest

import embedrt
from embedrt import Index, SDCIndex


def _recall(ids, exact):
    return np.mean([len(set(a) & set(b)) / exact.shape[1] for a, b in zip(ids, exact)])


def test_sdc_coarse_candidates_match_sdcindex():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 40)).astype(np.float32)
    q = rng.standard_normal((7, 40)).astype(np.float32)
    idx = Index(40, coarse="sdc", rescore=None, coarse_bits=3)
    idx.add(x)
    ref = SDCIndex(40, bits=3)
    ref.add(x)
    s1, i1 = idx.search(q, 12)
    s2, i2 = ref.search(q, 12)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)
    assert idx.bytes_per_vector == 3 * 5


def test_sdc_two_stage_rescoring_is_exact_int8_order():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 24)).astype(np.float32)
    q = rng.standard_normal((5, 24)).astype(np.float32)
    idx = Index(24, coarse="sdc")
    idx.add(x)
    # with every vector a candidate the two-stage result is the int8 scan's
    scores, ids = idx.search(q, 10, rescore_multiplier=30)
    int8 = embedrt.Int8Index(24)
    int8.add(x)
    s2, i2 = int8.search(q, 10)
    np.testing.assert_array_equal(ids, i2)
    np.testing.assert_allclose(scores, s2, rtol=1e-6)
    assert np.all(np.diff(scores, axis=1) <= 0)


@pytest.mark.parametrize("mmap", [True, False])
def test_sdc_index_save_load(tmp_path, mmap):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 33)).astype(np.float32)
    q = rng.standard_normal((4, 33)).astype(np.float32)
    idx = Index(33, coarse="sdc", coarse_bits=2)
    idx.add(x)
    idx.save(tmp_path / "i.ert")
    back = Index.load(tmp_path / "i.ert", mmap=mmap)
    back.verify()
    assert back.coarse == "sdc" and len(back) == 200
    for a, b in zip(idx.search(q, 5, rescore_multiplier=3), back.search(q, 5, rescore_multiplier=3)):
        np.testing.assert_array_equal(a, b)


def test_sdc_index_empty_save_load(tmp_path):
    idx = Index(16, coarse="sdc")
    idx.save(tmp_path / "e.ert")
    back = Index.load(tmp_path / "e.ert")
    assert len(back) == 0
    s, i = back.search(np.ones((2, 16), np.float32), 3)
    assert s.shape == (2, 0) and i.shape == (2, 0)


def test_sdc_coarse_bad_bits():
    with pytest.raises(ValueError):
        Index(16, coarse="sdc", coarse_bits=5)


def test_sdc_two_stage_recall_on_corpus(corpus_dir):
    x = np.load(corpus_dir / "stdlib_docstrings.minilm.npy").astype(np.float32)
    q = x[:200]
    exact = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    idx = Index(x.shape[1], coarse="sdc", coarse_bits=2)
    idx.add(x)
    _, ids = idx.search(q, 10, rescore_multiplier=4)
    # 2-bit SDC candidates are much better than sign bits: at depth 40 they already hold
    # nearly all of the true top-10
    assert _recall(ids, exact) >= 0.97
