"""The container format of every file embedrt writes (indexes, binarizers, converted models).

Layout (little-endian)::

    0   8 bytes  magic b"EMBEDRT\\0"
    8   u32      container version (1)
    12  u32      header length H
    16  u32      CRC-32 of the header bytes
    20  u32      reserved (0)
    24  H bytes  header: UTF-8 JSON {"kind", "version", "meta", "file_size", "sections"}
    ...          sections, each at a 64-byte aligned offset

Each section is one numpy array: {"name", "dtype", "shape", "offset", "nbytes", "crc32"}.
Only plain numeric dtypes are allowed; nothing is ever unpickled.

Guarantees on read: a wrong magic, an unknown version, a header that fails its checksum or
does not parse, a file shorter or longer than the header says, or a section that does not fit
raises ValueError before any data is used. Section checksums are verified at once when a file
is read into memory (mmap=False); with mmap=True they are verified on request
(``LoadedFile.verify()``) so that opening a large file does not read it, or at open when
``verify=True`` is passed.

Every size field is checked against the file's real length before anything is allocated or
mapped: a header longer than the file (or than ``MAX_HEADER_BYTES``), a section whose offset,
byte count or shape does not fit the file, a size that is not a plain integer, or JSON nested
deeper than the parser can take raises ValueError naming the file and the field, so a small file
can never ask for a large allocation.

Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the
target, so a crash never leaves a half-written file under the target name. The file gets the
permissions ``open()`` would give a new file (0o666 less the process umask), as ``numpy.save``.

A memory-mapped file that another process truncates while it is mapped makes the next access to
the lost pages fail with SIGBUS (the nature of mmap); replace files by renaming a new one over
them, as :func:`write_file` does, never by rewriting them in place.
"""
from __future__ import annotations

import json
import math
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"EMBEDRT\x00"
CONTAINER_VERSION = 1
_PREFIX = struct.Struct("<8sIIII")
_ALIGN = 64
_DTYPES = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
           "float16", "float32", "float64"}
_CHUNK = 1 << 24
MAX_HEADER_BYTES = 64 << 20  # a header holds sizes and small metadata, never bulk data
MAX_SECTIONS = 1 << 16
_MAX_DIM = 1 << 40  # bounds the dimensions of empty sections too (numpy cannot take 2**63)


def _crc32(arr: np.ndarray) -> int:
    buf = memoryview(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
    crc = 0
    for start in range(0, len(buf), _CHUNK):
        crc = zlib.crc32(buf[start:start + _CHUNK], crc)
    return crc & 0xFFFFFFFF


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux exposes it
    in /proc/self/status; elsewhere it is set and restored at once)."""
    try:
        with open("/proc/self/status", "r", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _json_loads(text, what: str):
    """json.loads that reports too deep a nesting as a ValueError naming `what`."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{what}: JSON nested too deeply") from None


def _plain_int(v, field: str, path, minimum: int = 0) -> int:
    """A JSON integer of the header (not a bool, float or string), at least `minimum`."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{path}: malformed header ({field} must be an integer, got {v!r:.60})")
    if v < minimum:
        raise ValueError(f"{path}: malformed header ({field} must be >= {minimum}, got {v})")
    return v


def write_file(path, kind: str, version: int, meta: dict, arrays: dict) -> None:
    """Writes `arrays` (name -> numpy array) and the JSON-able `meta` as one file, atomically."""
    path = Path(path)
    sections = []
    prepared = []
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        if dt.name not in _DTYPES:
            raise TypeError(f"section {name!r}: dtype {arr.dtype} cannot be stored")
        arr = np.ascontiguousarray(arr, dtype=dt.newbyteorder("<"))
        prepared.append(arr)
        sections.append({"name": name, "dtype": dt.name, "shape": list(arr.shape),
                         "nbytes": int(arr.nbytes), "crc32": _crc32(arr), "offset": 0})

    # The header's length depends on the offsets it holds; iterate until it is stable.
    header_len = 0
    while True:
        offset = _align(_PREFIX.size + header_len)
        for s in sections:
            s["offset"] = offset
            offset = _align(offset + s["nbytes"])
        file_size = sections[-1]["offset"] + sections[-1]["nbytes"] if sections else _PREFIX.size + header_len
        header = json.dumps({"kind": kind, "version": int(version), "meta": meta,
                             "file_size": file_size, "sections": sections},
                            sort_keys=True).encode("utf-8")
        if len(header) == header_len:
            break
        header_len = len(header)

    prefix = _PREFIX.pack(MAGIC, CONTAINER_VERSION, len(header), zlib.crc32(header) & 0xFFFFFFFF, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # only writers need it (kept out of `import embedrt`)

    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(prefix)
            f.write(header)
            for s, arr in zip(sections, prepared):
                f.write(b"\0" * (s["offset"] - f.tell()))
                if arr.nbytes:
                    f.write(memoryview(arr.reshape(-1).view(np.uint8)))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give what open() gives
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@dataclass
class LoadedFile:
    path: Path
    kind: str
    version: int
    meta: dict
    arrays: dict
    sections: list = field(repr=False, default_factory=list)
    verified: bool = False

    def verify(self) -> None:
        """Checks every section against its stored CRC-32; raises ValueError on a mismatch."""
        for s in self.sections:
            if _crc32(self.arrays[s["name"]]) != s["crc32"]:
                raise ValueError(f"{self.path}: checksum mismatch in section {s['name']!r}; "
                                 "the file is corrupted")
        self.verified = True


def read_file(path, kind: str, max_version: int, mmap: bool = True, verify=None) -> LoadedFile:
    """Opens a file written by write_file; see the module docstring for what is checked.

    verify: None means "verify now unless memory-mapped"; True or False force it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size

    def bad(msg):
        return ValueError(f"{path}: {msg}")

    with open(path, "rb") as f:
        prefix = f.read(_PREFIX.size)
        if len(prefix) < _PREFIX.size:
            raise bad("file is truncated (no header)")
        magic, cversion, header_len, header_crc, _ = _PREFIX.unpack(prefix)
        if magic != MAGIC:
            raise bad("not an embedrt file (bad magic)")
        if cversion != CONTAINER_VERSION:
            raise bad(f"unsupported container version {cversion}")
        if header_len > size - _PREFIX.size:
            raise bad("file is truncated (header)")
        if header_len > MAX_HEADER_BYTES:
            raise bad(f"header length {header_len} exceeds the limit of {MAX_HEADER_BYTES} bytes")
        header = f.read(header_len)
    if (zlib.crc32(header) & 0xFFFFFFFF) != header_crc:
        raise bad("header checksum mismatch; the file is corrupted")
    try:
        h = _json_loads(header.decode("utf-8"), str(path) + " header")
        file_kind, version, meta = h["kind"], h["version"], h["meta"]
        file_size, sections = h["file_size"], h["sections"]
    except (ValueError, KeyError, TypeError) as e:
        raise bad(f"malformed header ({e})") from None
    version = _plain_int(version, "version", path)
    file_size = _plain_int(file_size, "file_size", path)
    if not isinstance(sections, list):
        raise bad("malformed header (sections must be a list)")
    if len(sections) > MAX_SECTIONS:
        raise bad(f"malformed header ({len(sections)} sections, at most {MAX_SECTIONS})")
    if file_kind != kind:
        raise bad(f"holds a {file_kind!r}, not a {kind!r}")
    if version < 1 or version > max_version:
        raise bad(f"{kind} format version {version} is not supported (this embedrt reads up to {max_version})")
    if size < file_size:
        raise bad(f"file is truncated ({size} bytes, expected {file_size})")
    if size > file_size:
        raise bad(f"file has {size - file_size} unexpected trailing bytes")

    # Every section is checked against the file's length before anything is allocated or mapped.
    checked = []
    for i, s in enumerate(sections):
        if not isinstance(s, dict):
            raise bad(f"malformed section entry {i} (not an object)")
        try:
            name, dtype, shape = s["name"], s["dtype"], s["shape"]
            offset, nbytes, crc = s["offset"], s["nbytes"], s["crc32"]
        except KeyError as e:
            raise bad(f"malformed section entry {i} (no {e})") from None
        if not isinstance(name, str):
            raise bad(f"malformed section entry {i} (name must be a string, got {name!r:.60})")
        where = f"section {name!r}"
        offset = _plain_int(offset, f"{where} offset", path)
        nbytes = _plain_int(nbytes, f"{where} nbytes", path)
        _plain_int(crc, f"{where} crc32", path)
        if not isinstance(dtype, str) or dtype not in _DTYPES:
            raise bad(f"{where} has unsupported dtype {dtype!r:.60}")
        if not isinstance(shape, list) or len(shape) > 32:
            raise bad(f"malformed header ({where} shape must be a list of at most 32 integers)")
        shape = tuple(_plain_int(d, f"{where} shape", path) for d in shape)
        if any(d > _MAX_DIM for d in shape):
            raise bad(f"{where}: shape {shape} has a dimension above {_MAX_DIM}")
        dt = np.dtype(dtype).newbyteorder("<")
        # Python integers: a product of huge dimensions cannot overflow, it just fails to match.
        if math.prod(shape) * dt.itemsize != nbytes:
            raise bad(f"{where}: shape {shape} does not match its size {nbytes}")
        if nbytes > size or offset < _PREFIX.size + header_len or offset + nbytes > size:
            raise bad(f"{where} lies outside the file (offset {offset}, {nbytes} bytes, "
                      f"file of {size} bytes)")
        if name in (c[0] for c in checked):
            raise bad(f"{where} appears twice")
        checked.append((name, dt, shape, offset, nbytes))

    arrays = {}
    for name, dt, shape, offset, nbytes in checked:
        if nbytes == 0:
            arrays[name] = np.zeros(shape, dtype=dt)
        elif mmap:
            arrays[name] = np.memmap(path, dtype=dt, mode="r", offset=offset, shape=shape)
        else:
            with open(path, "rb") as f:
                f.seek(offset)
                arr = np.fromfile(f, dtype=dt, count=nbytes // dt.itemsize)
            if arr.nbytes != nbytes:
                raise bad(f"file is truncated in section {name!r}")
            arrays[name] = arr.reshape(shape)
    loaded = LoadedFile(path, file_kind, version, meta, arrays, sections)
    if verify if verify is not None else not mmap:
        loaded.verify()
    return loaded
