"""The replay file: a frame ring's whole state on disk, checksummed, written atomically.

Format (`.ring`, version 2): the raw arrays of `FrameRing.state_views` (filled slots only,
so a ring saved early is small; a prioritized ring's whole sum tree last), then a JSON
header (the ring's spec, its settings, the filled slot count, and each array's name, dtype,
shape and CRC-32s: one per env for the frames, one for each other array), then a fixed
trailer: the header's length, the header's own CRC-32 and a magic tag. Each env's frames
are stored oldest first: row r of env e is its slot `(cursor[e] + r) % filled_slots`, the
order in which the ring overwrites them.

That order is what lets a save run while training goes on (`RingSave`): the ring's
metadata is copied at once (13 bytes a slot, and a prioritized ring's tree, whose
priorities change meanwhile) and its frames are written in place, each env's oldest first
and all envs side by side, while a write to a frame not yet saved waits for it
(`FrameRing.begin_save`). The writer outruns the trainer by far, so it rarely waits.

Nothing in the file is trusted before it is checked: the trailer, the header's checksum,
the version, every field's type and range, the arrays against the ring the header
describes and against the file's size, each checksum, and last the arrays against each
other (cursors, counts, flags, priorities positive exactly at the valid transitions).
Arrays are streamed in chunks both ways, so saving or loading a 7 GB ring needs no second
copy in memory.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from atari_dqn.durable import atomic_write
from atari_dqn.errors import ReplayError
from atari_dqn.replay.ring import SETTINGS, FrameRing

FORMAT_VERSION = 2
_MAGIC = b"ATARIDQN-RING\x00\x02\x00"
_TRAILER = struct.Struct("<QI16s")  # header length, header CRC-32, magic
_CHUNK_BYTES = 64 << 20
_FLAGS = ("first", "has_next", "terminated", "truncated", "active")  # each 0 or 1


class _Corrupt(Exception):
    """Why a replay file cannot be trusted (becomes a ReplayError naming the file)."""


def _chunks(array: np.ndarray) -> Iterator[memoryview]:
    """Writable byte views covering `array` in order, each at most _CHUNK_BYTES long.

    `array` is C-contiguous or a [:, :f] cut of one, so each row is contiguous."""
    rows = [array] if array.flags.c_contiguous else list(array)
    for row in rows:
        flat = memoryview(row.reshape(-1).view(np.uint8))
        for start in range(0, flat.nbytes, _CHUNK_BYTES):
            yield flat[start : start + _CHUNK_BYTES]


_ROWS_PER_ROUND = 256  # frames per env written before the next env's (1.8 MB at 84x84)


def _frame_rows(frames_e: np.ndarray, start: int, lo: int, hi: int) -> Iterator[np.ndarray]:
    """Rows [lo, hi) of one env's frames in file order (row r is slot (start + r) % filled),
    as at most two runs of consecutive slots."""
    filled = frames_e.shape[0]
    a, b = (start + lo) % filled, (start + hi) % filled or filled
    if a < b:
        yield frames_e[a:b]
    else:
        yield frames_e[a:]
        yield frames_e[:b]


class SaveAbandoned(Exception):
    """A save was told to stop (`RingSave.abandon`) before it was written."""


class RingSave:
    """A ring's state as it is when this is made, written to a file later, from any thread,
    while the ring goes on (see the module docstring). `write` releases the ring's writers
    when it ends, written or not; `abandon` makes a `write` in progress stop early."""

    def __init__(self, ring: FrameRing) -> None:
        self._state, self._guard = ring.begin_save()
        self._abandoned = threading.Event()

    def abandon(self) -> None:
        self._abandoned.set()

    def write(self, path: str | os.PathLike) -> None:
        """Write the state to `path` atomically (nothing is left there if it fails)."""
        try:
            atomic_write(Path(path), self._write)
        finally:
            self._guard.release()

    def _write(self, f: BinaryIO) -> None:
        state = self._state
        arrays = state["arrays"]
        frames = arrays["frames"]
        n, filled, pixels = frames.shape
        crcs = [0] * n
        fd = f.fileno()
        for lo in range(0, filled, _ROWS_PER_ROUND):
            hi = min(lo + _ROWS_PER_ROUND, filled)
            for e in range(n):
                offset = (e * filled + lo) * pixels
                for run in _frame_rows(frames[e], int(self._guard.start[e]), lo, hi):
                    data = memoryview(run.reshape(-1))
                    os.pwrite(fd, data, offset)
                    crcs[e] = zlib.crc32(data, crcs[e])
                    offset += data.nbytes
            self._guard.saved(hi)
            if self._abandoned.is_set():
                raise SaveAbandoned("the save was abandoned")
        self._guard.release()  # the rest are copies: the ring's writers may go on
        f.seek(frames.nbytes)
        header: dict[str, Any] = {"version": FORMAT_VERSION, **state, "arrays": []}
        header["arrays"].append(_spec("frames", frames, crcs))
        for name, array in arrays.items():
            if name != "frames":
                crc = 0
                for chunk in _chunks(array):
                    f.write(chunk)
                    crc = zlib.crc32(chunk, crc)
                header["arrays"].append(_spec(name, array, [crc]))
        blob = json.dumps(header).encode()
        f.write(blob)
        f.write(_TRAILER.pack(len(blob), zlib.crc32(blob), _MAGIC))


def _spec(name: str, array: np.ndarray, crcs: list[int]) -> dict[str, Any]:
    return {"name": name, "dtype": array.dtype.str, "shape": list(array.shape), "crc32": crcs}


def save_ring(ring: FrameRing, path: str | os.PathLike) -> None:
    """Write `ring`'s state to `path` atomically, now (`RingSave` writes it later)."""
    RingSave(ring).write(path)


def load_ring(path: str | os.PathLike, **settings: float) -> FrameRing:
    """A ring restored from `save_ring`: same contents, cursors, priorities and sampler
    state, and the settings it was saved with, bar those given (`discount`,
    `priority_exponent`, `priority_epsilon`: a resumed run may change them).

    Anything wrong with the file is a ReplayError that names it and the first problem."""
    path = Path(path)
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise TypeError(f"load_ring: unknown settings {sorted(unknown)}; known: {SETTINGS}")
    try:
        with open(path, "rb") as f:
            return _read(f, f.seek(0, os.SEEK_END), settings)
    except _Corrupt as exc:
        raise ReplayError(
            f"replay file '{path}' is unreadable ({exc}); it is truncated or corrupt: "
            "resume without it (checkpoint.save_replay=false) or from an earlier checkpoint"
        ) from None
    except OSError as exc:
        raise ReplayError(f"cannot read replay file '{path}': {exc}") from exc


def _read(f: BinaryIO, size: int, settings: dict[str, float]) -> FrameRing:
    if size < _TRAILER.size:
        raise _Corrupt(f"{size} bytes is too short")
    f.seek(size - _TRAILER.size)
    header_len, header_crc, magic = _TRAILER.unpack(f.read(_TRAILER.size))
    if magic != _MAGIC or header_len > size - _TRAILER.size:
        raise _Corrupt("no replay trailer at the end")
    f.seek(size - _TRAILER.size - header_len)
    blob = f.read(header_len)
    if zlib.crc32(blob) != header_crc:
        raise _Corrupt("its header fails its CRC-32 check")
    header = _parse_header(blob)
    saved = {name: header[name] for name in SETTINGS}
    try:
        ring = FrameRing(
            header["capacity"],
            header["num_envs"],
            history_length=header["history_length"],
            frame_shape=tuple(header["frame_shape"]),
            n_step=header["n_step"],
            prioritized=header["prioritized"],
            **{**saved, **settings},
        )
    except ReplayError as exc:
        raise _Corrupt(f"its header describes no valid ring: {exc}") from None
    filled = header["filled_slots"]
    if not 0 <= filled <= ring.slots:
        raise _Corrupt(f"filled_slots {filled} is outside [0, {ring.slots}]")
    dests = ring.state_views(filled)
    specs = header["arrays"]
    expected = [(name, a.dtype.str, list(a.shape)) for name, a in dests.items()]
    if [(s["name"], s["dtype"], s["shape"]) for s in specs] != expected:
        raise _Corrupt("its arrays are not those of the ring its header describes")
    if [len(s["crc32"]) for s in specs] != [ring.num_envs] + [1] * (len(specs) - 1):
        raise _Corrupt("its checksums are not one per env for the frames, one per array")
    if sum(a.nbytes for a in dests.values()) != size - _TRAILER.size - header_len:
        raise _Corrupt("its size does not match its arrays")
    # The other arrays first: the cursors say where each env's frames go.
    f.seek(dests["frames"].nbytes)
    for spec, (name, dst) in zip(specs[1:], list(dests.items())[1:], strict=True):
        crc = 0
        for chunk in _chunks(dst):
            _read_into(f, chunk, name)
            crc = zlib.crc32(chunk, crc)
        if crc != spec["crc32"][0]:
            raise _Corrupt(f"array '{name}' fails its CRC-32 check")
    _check_consistent(ring, filled, dests)
    try:
        ring.rebuild_validity()
    except ReplayError as exc:
        raise _Corrupt(str(exc)) from None
    f.seek(0)
    frames = dests["frames"]
    for e in range(ring.num_envs):
        crc = 0
        start = int(dests["cursor"][e]) % filled if filled else 0
        for run in _frame_rows(frames[e], start, 0, filled) if filled else ():
            for chunk in _chunks(run):
                _read_into(f, chunk, "frames")
                crc = zlib.crc32(chunk, crc)
        if crc != specs[0]["crc32"][e]:
            raise _Corrupt(f"the frames of env {e} fail their CRC-32 check")
    return ring


def _read_into(f: BinaryIO, chunk: memoryview, name: str) -> None:
    if f.readinto(chunk) != chunk.nbytes:
        raise _Corrupt(f"array '{name}' is cut short")


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_header(blob: bytes) -> dict[str, Any]:
    """The header, with every field of the right type (ranges are the ring's to check)."""
    try:
        header = json.loads(blob)
    except ValueError:
        raise _Corrupt("its header is not JSON") from None
    if not isinstance(header, dict):
        raise _Corrupt("its header is not a mapping")
    if header.get("version") != FORMAT_VERSION:
        raise _Corrupt(
            f"it is format version {header.get('version')!r}, this atari-dqn reads version "
            f"{FORMAT_VERSION}"
        )
    for key in ("capacity", "num_envs", "history_length", "filled_slots"):
        if not _integer(header.get(key)):
            raise _Corrupt(f"header field '{key}' is {header.get(key)!r}, not an integer")
    kinds = {"n_step": _integer, "prioritized": lambda v: isinstance(v, bool)}
    kinds |= dict.fromkeys(SETTINGS, lambda v: _integer(v) or isinstance(v, float))
    for key, fits in kinds.items():
        if not fits(header.get(key)):
            raise _Corrupt(f"header field '{key}' is {header.get(key)!r}, of the wrong type")
    shape = header.get("frame_shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(_integer(x) for x in shape)):
        raise _Corrupt(f"header field 'frame_shape' is {shape!r}, not two integers")
    arrays = header.get("arrays")
    keys = {"name": str, "dtype": str, "shape": list, "crc32": list}
    if not isinstance(arrays, list) or not all(
        isinstance(a, dict)
        and all(isinstance(a.get(k), t) for k, t in keys.items())
        and all(_integer(c) for c in a["crc32"])
        for a in arrays
    ):
        raise _Corrupt("header field 'arrays' is malformed")
    return header


def _check_consistent(ring: FrameRing, filled: int, a: dict[str, np.ndarray]) -> None:
    """The loaded arrays agree with each other, as any ring's own writes leave them."""
    written, cursor = a["written"], a["cursor"]
    if (written < 0).any() or int(min(written.max(), ring.slots)) != filled:
        raise _Corrupt("its write counts do not match its filled slots")
    if not np.array_equal(cursor, written % ring.slots):
        raise _Corrupt("its write cursors do not match its write counts")
    for name in _FLAGS:
        if a[name].max(initial=0) > 1:
            raise _Corrupt(f"array '{name}' holds values other than 0 and 1")
    if not np.array_equal(a["n_has_next"], a["has_next"].sum(axis=1, dtype=np.int64)):
        raise _Corrupt("its transition counts do not match its flags")
    unwritten = np.arange(filled)[None, :] >= written[:, None]
    if (a["has_next"][unwritten] | a["first"][unwritten]).any():
        raise _Corrupt("slots never written hold transitions")
