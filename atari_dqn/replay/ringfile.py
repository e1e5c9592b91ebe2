"""The replay file: a frame ring's whole state on disk, checksummed, written atomically.

Format (`.ring`): the raw arrays of `FrameRing.state_views` (filled slots only, so a ring
saved early is small), then a JSON header listing each array's dtype, shape and CRC-32,
then a fixed trailer with the header's length and a magic tag. Arrays are streamed in
chunks both ways, so saving or loading a 7 GB ring needs no second copy in memory.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from atari_dqn.durable import atomic_write
from atari_dqn.errors import ReplayError
from atari_dqn.replay.ring import FrameRing

FORMAT_VERSION = 1
SUFFIX = ".ring"
_MAGIC = b"ATARIDQN-RING\x00\x01\x00"
_TRAILER = struct.Struct("<Q16s")  # header length, magic
_CHUNK_BYTES = 64 << 20


def _chunks(array: np.ndarray) -> Iterator[memoryview]:
    """Writable byte views covering `array` in order, each at most _CHUNK_BYTES long.

    `array` is C-contiguous or a [:, :f] cut of one, so each row is contiguous."""
    rows = [array] if array.flags.c_contiguous else list(array)
    for row in rows:
        flat = memoryview(row.reshape(-1).view(np.uint8))
        for start in range(0, flat.nbytes, _CHUNK_BYTES):
            yield flat[start : start + _CHUNK_BYTES]


def save_ring(ring: FrameRing, path: str | os.PathLike) -> None:
    """Write `ring`'s state to `path` atomically; other threads wait until it is written."""
    with ring.snapshot() as state:

        def write(f: BinaryIO) -> None:
            header: dict[str, Any] = {"version": FORMAT_VERSION, **state, "arrays": []}
            for name, array in state["arrays"].items():
                crc = 0
                for chunk in _chunks(array):
                    f.write(chunk)
                    crc = zlib.crc32(chunk, crc)
                header["arrays"].append(
                    {"name": name, "dtype": array.dtype.str, "shape": list(array.shape),
                     "crc32": crc}
                )  # fmt: skip
            blob = json.dumps(header).encode()
            f.write(blob)
            f.write(_TRAILER.pack(len(blob), _MAGIC))

        atomic_write(Path(path), write)


def load_ring(path: str | os.PathLike) -> FrameRing:
    """A ring restored from `save_ring`: same contents, cursors and sampler state."""
    path = Path(path)

    def corrupt(why: str) -> ReplayError:
        return ReplayError(
            f"replay file '{path}' is unreadable ({why}); it is truncated or corrupt: "
            "resume without it (checkpoint.save_replay) or from an earlier checkpoint"
        )

    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size < _TRAILER.size:
                raise corrupt(f"{size} bytes is too short")
            f.seek(size - _TRAILER.size)
            header_len, magic = _TRAILER.unpack(f.read(_TRAILER.size))
            if magic != _MAGIC or header_len > size - _TRAILER.size:
                raise corrupt("no replay trailer at the end")
            f.seek(size - _TRAILER.size - header_len)
            try:
                header = json.loads(f.read(header_len))
                ring = FrameRing(
                    header["capacity"], header["num_envs"],
                    history_length=header["history_length"],
                    frame_shape=tuple(header["frame_shape"]),
                )  # fmt: skip
                specs = {spec["name"]: spec for spec in header["arrays"]}
                dests = ring.state_views(int(header["filled_slots"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise corrupt(f"bad header: {exc}") from exc
            f.seek(0)
            for name, dst in dests.items():
                spec = specs.get(name)
                if (spec is None or spec["dtype"] != dst.dtype.str
                        or spec["shape"] != list(dst.shape)):  # fmt: skip
                    raise corrupt(f"array '{name}' missing or of the wrong shape")
                crc = 0
                for chunk in _chunks(dst):
                    if f.readinto(chunk) != chunk.nbytes:
                        raise corrupt(f"array '{name}' is cut short")
                    crc = zlib.crc32(chunk, crc)
                if crc != spec["crc32"]:
                    raise corrupt(f"array '{name}' fails its CRC-32 check")
    except OSError as exc:
        raise ReplayError(f"cannot read replay file '{path}': {exc}") from exc
    return ring
