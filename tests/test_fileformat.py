import numpy as np
import pytest

from embedrt import _fileformat as ff


def _write(tmp_path, **arrays):
    p = tmp_path / "x.bin"
    ff.write_file(p, "test", 1, {"a": 1, "s": "x"}, arrays)
    return p


@pytest.mark.parametrize("mmap", [False, True])
def test_roundtrip(tmp_path, mmap):
    a = np.arange(100, dtype=np.uint8).reshape(10, 10)
    b = np.linspace(0, 1, 7, dtype=np.float32)
    e = np.zeros((0, 3), dtype=np.int8)
    p = _write(tmp_path, a=a, b=b, e=e)
    f = ff.read_file(p, "test", 1, mmap=mmap)
    f.verify()
    assert f.meta == {"a": 1, "s": "x"}
    np.testing.assert_array_equal(f.arrays["a"], a)
    np.testing.assert_array_equal(f.arrays["b"], b)
    assert f.arrays["e"].shape == (0, 3)


def test_truncated(tmp_path):
    p = _write(tmp_path, a=np.arange(1000, dtype=np.int32))
    data = p.read_bytes()
    for cut in (0, 5, 30, len(data) - 1):
        p.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated|magic"):
            ff.read_file(p, "test", 1, mmap=True)


def test_altered_data(tmp_path):
    p = _write(tmp_path, a=np.arange(1000, dtype=np.int32))
    data = bytearray(p.read_bytes())
    data[-10] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        ff.read_file(p, "test", 1, mmap=False)
    f = ff.read_file(p, "test", 1, mmap=True)  # lazy: opens, verify() finds it
    with pytest.raises(ValueError, match="checksum"):
        f.verify()
    with pytest.raises(ValueError, match="checksum"):
        ff.read_file(p, "test", 1, mmap=True, verify=True)


def test_altered_header(tmp_path):
    p = _write(tmp_path, a=np.arange(10, dtype=np.int32))
    data = bytearray(p.read_bytes())
    data[30] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="header"):
        ff.read_file(p, "test", 1)


def test_wrong_kind_and_version(tmp_path):
    p = _write(tmp_path, a=np.arange(10, dtype=np.int32))
    with pytest.raises(ValueError, match="not a 'other'"):
        ff.read_file(p, "other", 1)
    ff.write_file(p, "test", 5, {}, {})
    with pytest.raises(ValueError, match="version 5"):
        ff.read_file(p, "test", 1)


def test_not_our_file(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.arange(10))
    with pytest.raises(ValueError, match="magic"):
        ff.read_file(p, "test", 1)
    with pytest.raises(FileNotFoundError):
        ff.read_file(tmp_path / "missing", "test", 1)


def test_trailing_bytes(tmp_path):
    p = _write(tmp_path, a=np.arange(10, dtype=np.int32))
    with open(p, "ab") as f:
        f.write(b"xx")
    with pytest.raises(ValueError, match="trailing"):
        ff.read_file(p, "test", 1)


def test_object_dtype_refused(tmp_path):
    with pytest.raises(TypeError):
        ff.write_file(tmp_path / "o", "test", 1, {}, {"a": np.array([object()])})
