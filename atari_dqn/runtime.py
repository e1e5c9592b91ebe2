"""How a run runs on this machine, decided once: the device and every speed switch.

The config says what the user asked (`auto` for most switches); `resolve` turns it into one
frozen `Runtime` by looking at the machine once, at the start of a run. The run writes it to
`run.log` and `runtime.json`, and hands it to the parts it builds: nothing below asks the
machine again (this is the one module that calls `torch.cuda.is_available`). None of these
switches changes what is learned beyond the order of float operations; the maths switches
(bf16 autocast, TF32) are the experiment's and stay in the config. (Denormal floats are
flushed where a process starts: `atari_dqn.cores.flush_denormals`.)
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from atari_dqn.config import Config
from atari_dqn.cores import usable_cores
from atari_dqn.errors import ConfigError
from atari_dqn.malloc import keep_freed_memory


def cuda_present() -> bool:
    """Whether torch sees a CUDA device (for tests and benchmarks that choose a device)."""
    return torch.cuda.is_available()


@dataclass(frozen=True)
class Runtime:
    """The resolved switches of one run (see `resolve` for how each `auto` is decided)."""

    device: str
    """`cpu` or a CUDA device such as `cuda` or `cuda:1`."""
    cuda_graph: bool
    """The update and greedy acting run as captured CUDA graphs."""
    compile: bool
    """torch.compile of the update (never with a CUDA graph, which replaces it)."""
    channels_last: bool
    """Channels-last convolutions."""
    overlap: bool
    """Updates run while worker processes step the envs."""
    prefetch: bool
    """A background thread samples the next batch while the learner runs."""
    torch_threads: int
    """torch's intra-op threads (when the config says 0, torch's default, at most the cores
    this process can use: `cores.usable_cores`)."""

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def place(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` on this runtime's device, in its memory format."""
        return module.to(self.torch_device, memory_format=self.memory_format)

    def generator(self, seed: int) -> torch.Generator:
        """The generator a learner's random draws come from (a noisy network's noise, the
        batch augmentation's shifts), seeded with `seed`: on the
        CPU one of its own; on CUDA the device's default generator, the one a captured graph
        draws from without registering it (each replay then draws new values, and its state,
        saved in checkpoints, says where the draws are)."""
        if not self.on_cuda:
            return torch.Generator().manual_seed(seed)
        torch.cuda.init()  # the default generators exist once CUDA is initialised
        index = self.torch_device.index
        generator = torch.cuda.default_generators[
            torch.cuda.current_device() if index is None else index
        ]
        return generator.manual_seed(seed)

    def describe(self) -> str:
        """One line for run.log: every switch as it was resolved."""
        gpu = f" ({torch.cuda.get_device_name(self.torch_device)})" if self.on_cuda else ""
        switches = ", ".join(
            f"{k}={'on' if v is True else 'off' if v is False else v}"
            for k, v in dataclasses.asdict(self).items()
            if k != "device"
        )
        return f"runtime: {self.device}{gpu}, {switches}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _device(name: str) -> str:
    """`auto` -> CUDA when present, else CPU; a CUDA device that is absent is a ConfigError."""
    if name == "auto":
        return "cuda" if cuda_present() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(
            f"learner.device={name!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from exc
    if device.type == "cuda" and not cuda_present():
        raise ConfigError(
            f"learner.device={name!r} but torch sees no CUDA device; use learner.device=cpu "
            "(or auto), or install a CUDA build of torch"
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"learner.device={name!r}: only cpu and cuda devices are supported")
    return str(device)


def _switch(value: str, auto: bool) -> bool:
    """A `auto|true|false` setting: `auto` takes the machine's answer."""
    return auto if value == "auto" else value == "true"


def resolve(cfg: Config) -> Runtime:
    """The runtime of `cfg` on this machine.

    On CUDA, by default: the update is one captured graph (the GPU is bound by kernel
    launches, not arithmetic, at batch 32), the updates overlap env stepping, and a thread
    prefetches batches. On a CPU: torch.compile and channels-last kernels (the update is
    bound by arithmetic there, and both cores are busy), no overlap and no prefetch thread
    (each would compete with torch for the same cores)."""
    learner = cfg.learner
    device = _device(learner.device)
    on_cuda = device.startswith("cuda")
    if learner.cuda_graph == "true" and not on_cuda:
        raise ConfigError(
            f"learner.cuda_graph=true needs a CUDA device, and the learner is on {device}; "
            "use learner.cuda_graph=auto"
        )
    graphs = _switch(learner.cuda_graph, on_cuda)
    return Runtime(
        device=device,
        cuda_graph=graphs,
        compile=learner.compile and not graphs,
        channels_last=_switch(learner.channels_last, not on_cuda),
        overlap=_switch(cfg.loop.overlap, on_cuda),
        prefetch={"always": True, "never": False}.get(cfg.replay.prefetch, on_cuda),
        torch_threads=learner.torch_threads or min(torch.get_num_threads(), usable_cores()),
    )


def apply(runtime: Runtime) -> None:
    """Set the process-wide switches a runtime implies: torch's thread count, and an
    allocator that keeps what each step frees (`atari_dqn.malloc`)."""
    torch.set_num_threads(runtime.torch_threads)
    keep_freed_memory()


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """cuDNN's and cuBLAS's TF32 switched to `enabled` for the block, then back: the
    switches are global, and one network's maths must not change another's (nor torch's
    default, TF32 on for cuDNN convolutions, change ours)."""
    backends = torch.backends
    before = backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32
    backends.cudnn.allow_tf32 = backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32 = before


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast for forward passes when `bf16`, else a no-op. Its weight cache is off:
    a captured graph must not keep casts from its capture."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
