"""The CUDA engine: every param group's LR advanced by one kernel launch per step, with no host sync.

A :class:`CudaEngine` owns, on the params' CUDA device and allocated by torch (so the caching allocator and
CUDA-graph memory pools see it): the compiled schedule tables, the int64 step counter, a float64 mirror of
the last LRs, and the LR buffer the optimizer reads (float32 by default; one 0-d view per group, see
:meth:`CudaEngine.lr_tensors`). :meth:`CudaEngine.advance` is one launch of the compiled core on the current
torch stream: it moves the device step on and writes every group's LR. Captured in a CUDA graph, each replay
advances the schedule with no host involvement.

**Host mirror.** The engine also runs the same program on the host in double precision, in lockstep with
the Python calls, so :meth:`CudaEngine.lrs` / :attr:`CudaEngine.step` answer without a sync. It cannot see
graph replays (an ``advance()`` recorded into a graph does not move it) nor a step the device skipped for a
non-zero ``found_inf`` (``torch.amp.GradScaler``'s inf/NaN flag); it is then *possibly stale*
(:attr:`CudaEngine.stale`) until :meth:`CudaEngine.resync`, the one documented call that waits for the device
and copies its step, mirror and LR buffer back in a single copy (:meth:`CudaEngine.state_dict` resyncs first).

:func:`check_optimizer_for_device_lrs` and :func:`replace_shared_lr_tensors` make sure a torch optimizer
really reads these tensors on the device; they, the GradScaler flag and ``wrap()``'s binding live in
:mod:`torchsched._cuda_optim` and are re-exported here.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np
import torch

from . import _core
from . import _torch_compat as compat
from . import _validate as check
from ._cuda_optim import (  # noqa: F401  (re-exported: optim.py and the tests import them from here)
    CudaBinding, _optimizer_kind, _tensors_of, check_group_flags, check_group_lr, check_optimizer_for_device_lrs,
    params_of, refuse_cpu_lr_for_cuda_params, replace_shared_lr_tensors, resolve_device, scaler_found_inf,
)
from ._engine import FLOAT32, FLOAT64, Engine
from ._program import CHAINABLE_CODES as _CHAINABLE_CODES, OP_DTYPE

__all__ = [
    "CudaEngine", "check_optimizer_for_device_lrs", "replace_shared_lr_tensors", "resolve_device",
    "scaler_found_inf", "REBUILD_HINT",
]

REBUILD_HINT = (
    "torchsched was built without its CUDA engine (torchsched._core.built_with_cuda() is False). Rebuild it "
    "on a machine with nvcc on PATH: from a checkout, `TORCHSCHED_CUDA=ON make build` (or `TORCHSCHED_CUDA=ON "
    "pip install --no-build-isolation --no-deps -e .`); from PyPI, `TORCHSCHED_CUDA=ON pip install "
    "--force-reinstall --no-binary torchsched torchsched`. TORCHSCHED_CUDA=ON makes the build fail loudly "
    "when nvcc is missing instead of silently building the CPU engine only."
)

# The current stream's cudaStream_t as an integer, without building a Stream object (the hot path).
_raw_current_stream = compat.raw_current_stream

_DTYPES = {torch.float32: (FLOAT32, np.float32, 4), torch.float64: (FLOAT64, np.float64, 8)}


def _dtype_info(dtype: Any) -> tuple[int, Any, int]:
    """(core dtype code, numpy dtype, bytes per element) of an LR buffer dtype."""
    info = _DTYPES.get(dtype)
    if info is None:
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return info


def require_cuda_build() -> None:
    """Raises RuntimeError (saying how to rebuild) when the compiled core has no CUDA engine."""
    if not _core.built_with_cuda():
        raise RuntimeError(REBUILD_HINT)


def _require_cuda_runtime(device: torch.device) -> None:
    require_cuda_build()
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"no CUDA device is available to torch (torch {torch.__version__}, built with CUDA "
            f"{torch.version.cuda}); the CUDA engine needs params on a CUDA device")
    if not _core.cuda_available():
        raise RuntimeError(
            "torch sees a CUDA device but torchsched's core does not: the core links the CUDA runtime it was "
            "built with statically, and the installed driver may be too old for it. Update the driver, or "
            "rebuild torchsched with an nvcc no newer than the driver supports")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {device} does not exist: torch sees {torch.cuda.device_count()} CUDA device(s)")


# ---- device state layout -------------------------------------------------------------------------

class StateLayout:
    """One byte buffer holds the step (int64), the float64 mirror and the LR buffer, in that order, so that
    :meth:`CudaEngine.resync` is a single copy. Offsets are multiples of 8, so each region is a typed view."""

    def __init__(self, groups: int, dtype: Any) -> None:
        _, self.np_dtype, self.itemsize = _dtype_info(dtype)
        self.groups = int(groups)
        self.dtype = dtype
        self.mirror_offset = 8
        self.out_offset = 8 + 8 * self.groups
        end = self.out_offset + self.itemsize * self.groups
        self.nbytes = (end + 7) // 8 * 8

    def views(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(step [1] int64, mirror [G] float64, LR buffer [G]) views of a uint8 state tensor."""
        if state.dtype != torch.uint8 or state.dim() != 1 or state.numel() != self.nbytes or not state.is_contiguous():
            raise ValueError(f"state must be a contiguous uint8 tensor of {self.nbytes} bytes")
        step = state[0:8].view(torch.int64)
        mirror = state[self.mirror_offset:self.out_offset].view(torch.float64)
        out = state[self.out_offset:self.out_offset + self.itemsize * self.groups].view(self.dtype)
        return step, mirror, out

    def pack(self, step: int, mirror: Any, out: Any) -> np.ndarray:
        raw = np.zeros(self.nbytes, dtype=np.uint8)
        raw[0:8].view(np.int64)[0] = int(step)
        raw[self.mirror_offset:self.out_offset].view(np.float64)[:] = np.asarray(mirror, dtype=np.float64)
        raw[self.out_offset:self.out_offset + self.itemsize * self.groups].view(self.np_dtype)[:] = \
            np.asarray(out, dtype=self.np_dtype)
        return raw

    def unpack(self, raw: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        raw = np.ascontiguousarray(raw, dtype=np.uint8)
        if raw.size != self.nbytes:
            raise ValueError(f"state has {raw.size} bytes, expected {self.nbytes}")
        step = int(raw[0:8].view(np.int64)[0])
        mirror = raw[self.mirror_offset:self.out_offset].view(np.float64).copy()
        out = raw[self.out_offset:self.out_offset + self.itemsize * self.groups].view(self.np_dtype).copy()
        return step, mirror, out


# ---- host mirror -----------------------------------------------------------------------------------

class HostMirror:
    """The host twin of the device state: the same program, evaluated in double precision by the core.

    Closed-form programs are evaluated lazily (the value depends on the step alone, so an advance is a counter
    increment and :meth:`lrs` evaluates once when asked). Programs with chainable torch rules, or engines that
    read the previous LR from the buffer (``read_prev``), are evaluated at every step, in order, into a host
    shadow of the LR buffer of the same dtype, so they repeat the device's arithmetic.
    """

    def __init__(self, host: Engine, dtype: Any, read_prev: bool, initial: Sequence[float]) -> None:
        self.engine: Any = host  # Any: mypy cannot type Engine's attributes through the import cycle
        self.core: Any = getattr(host, "_core")
        self.code, np_dtype, _ = _dtype_info(dtype)
        self.read_prev = bool(read_prev)
        groups = self.core.groups
        ops = np.frombuffer(self.core.program.op_bytes(), dtype=OP_DTYPE)
        self.chainable = bool(np.isin(ops["code"], list(_CHAINABLE_CODES)).any())
        self.eager = self.chainable or self.read_prev
        self.shadow = np.asarray(initial, dtype=np_dtype).copy()
        if self.shadow.shape != (groups,):
            raise ValueError(f"initial LRs need one value per group ({groups}), got {len(self.shadow)}")
        self.core.set_mirror(np.asarray(initial, dtype=np.float64))
        self.step = int(self.core.step)
        self._evaluated_at = -1
        self.possibly_skipped = False  # an advance with found_inf: the device may have held the step
        self.captured = False  # an advance was recorded into a CUDA graph: replays are invisible here
        self._write()

    @property
    def stale(self) -> bool:
        return self.possibly_skipped or self.captured

    def _write(self) -> None:
        """f(step) into the mirror (and the shadow), as the device's write."""
        if self.eager:
            self.core.write(int(self.shadow.ctypes.data), self.code, self.shadow.size, self.read_prev)
        else:
            self.core.write(0, FLOAT64, 0, False)
        self._evaluated_at = self.step

    def advance(self, maybe_skipped: bool = False) -> None:
        """The host side of one device advance (assumed taken; ``maybe_skipped`` marks the mirror stale)."""
        self.step += 1
        if self.eager:
            self.core.advance(int(self.shadow.ctypes.data), self.code, self.shadow.size, self.read_prev)
            self._evaluated_at = self.step
        else:
            self.core.step = self.step
        if maybe_skipped:
            self.possibly_skipped = True

    def record_capture(self) -> None:
        self.captured = True

    def rewrite(self) -> None:
        """The host side of a device write(): the LRs of the current step, recomputed."""
        self.core.step = self.step
        self._write()

    def set_step(self, step: int) -> None:
        self.step = int(step)
        self.core.step = self.step
        self._write()

    def mirror(self) -> np.ndarray:
        if self._evaluated_at != self.step:
            self.core.step = self.step
            self._write()
        return np.asarray(self.core.mirror(), dtype=np.float64)

    def lrs(self) -> list[float]:
        if self._evaluated_at != self.step:
            self.core.step = self.step
            self._write()
        return list(self.core.lrs())

    def load(self, step: int, mirror: Any, out: Any) -> None:
        """Adopts the device's state (after a resync or a load): exact again."""
        self.step = check.counter_step("step", step)
        self.core.step = self.step
        self.core.set_mirror(np.asarray(mirror, dtype=np.float64))
        self.shadow[:] = np.asarray(out, dtype=self.shadow.dtype)
        self._evaluated_at = self.step
        self.possibly_skipped = False
        self.captured = False


# ---- the engine ------------------------------------------------------------------------------------

class ProgramHost:
    """The host side of :meth:`CudaEngine.from_program`: a core engine on a caller-compiled program, with the
    attributes of :class:`torchsched.Engine` that :class:`HostMirror` and :class:`CudaEngine` use."""

    def __init__(self, program: Any, roots: Sequence[int], scale: Sequence[float], step: int = 0) -> None:
        if not isinstance(program, _core.Program):
            raise TypeError(f"program must be a torchsched._core.Program, got {type(program).__name__}")
        root_list = list(roots)
        if not root_list:
            raise ValueError("roots must name one program root per group (at least one)")
        for i, r in enumerate(root_list):
            check.integer(f"roots[{i}]", r)
        base = check.non_negative_list("scale", scale, len(root_list))
        step = check.counter_step("step", step)
        # The core checks every root against the program (ValueError naming it).
        self._core: Any = _core.HostEngine(program, np.asarray(root_list, dtype=np.int32), np.asarray(base, dtype=np.float64),
                                  int(step))
        self.base_lrs: list[float] = base
        self.multipliers: list[float] = [1.0] * len(base)

    @property
    def groups(self) -> int:
        return int(self._core.groups)

    def set_multiplier(self, group: int, value: float) -> None:
        v = check.non_negative("multiplier", value)
        self.multipliers[group] = v
        self._core.set_scale(group, self.base_lrs[group] * v)


class CudaEngine:
    """G param groups on one CUDA device: ``LR_g(t) = base_lrs[g] * multipliers[g] * schedule_g(t)``.

    Same schedule semantics as :class:`torchsched.Engine`: after construction the LRs are ``f(step)``; each
    :meth:`advance` moves to the next step and writes all G LRs, here with one kernel launch on the current
    torch stream and no host sync.

    Args:
        schedules: one torchsched schedule for every group, or one per group.
        base_lrs, multipliers: per-group factors, as for :class:`torchsched.Engine`.
        device: the CUDA device; ``params`` may give it instead (they must all be on it).
        params: tensors, param groups or an optimizer, to take (and check) the device from.
        step: the step to start at (a resumed run).
        dtype: of the LR buffer: ``torch.float32`` (what fused optimizers read) or ``torch.float64``.
        read_prev: chainable rules read the previous LR from the LR buffer (so an LR edited in place is
            respected, as torch does); otherwise from the float64 mirror.
        initial_lrs: the LR each group has before the first write (what chainable rules start from);
            defaults to ``base_lrs[g] * multipliers[g]``. A chainable torch rule computes the new LR from the
            previous one and the engine still multiplies by ``base_lrs[g] * multipliers[g]``, so programs made
            of chainable rules take base LRs of 1 and their starting LRs here.

    Construct the engine outside CUDA-graph capture (it allocates and copies its tables); keep it alive for as
    long as a graph that captured :meth:`advance` may replay.
    """

    def __init__(self, schedules: Any, base_lrs: Sequence[float], multipliers: Sequence[float] | None = None, *,
                 device: Any = None, params: Any = None, step: int = 0, dtype: Any = torch.float32,
                 read_prev: bool = False, initial_lrs: Sequence[float] | None = None) -> None:
        require_cuda_build()
        _dtype_info(dtype)
        host: Any = Engine(schedules, base_lrs, multipliers, step=step)  # validates the schedule arguments
        self._setup(host, device, params, step, dtype, read_prev, initial_lrs)

    @classmethod
    def from_program(cls, program: Any, roots: Sequence[int], scale: Sequence[float], *, device: Any = None,
                     params: Any = None, step: int = 0, dtype: Any = torch.float32, read_prev: bool = False,
                     initial_lrs: Sequence[float] | None = None) -> CudaEngine:
        """An engine on a program the caller compiled (a ``_core.Program`` and one root per group, as the
        ``lr_scheduler`` twins build them): ``LR_g(t) = scale[g] * program_{roots[g]}(t)``. Same keywords as
        the constructor; ``base_lrs`` are ``scale`` and the multipliers start at 1."""
        require_cuda_build()
        _dtype_info(dtype)
        engine = cls.__new__(cls)
        engine._setup(ProgramHost(program, roots, scale, step), device, params, step, dtype, read_prev, initial_lrs)
        return engine

    def _setup(self, host: Any, device: Any, params: Any, step: int, dtype: Any, read_prev: bool,
               initial_lrs: Sequence[float] | None) -> None:
        _dtype_info(dtype)
        groups = host.groups
        initial = (list(host._core.scale()) if initial_lrs is None
                   else check.real_list("initial_lrs", initial_lrs, groups))
        dev = resolve_device(device, params)
        _require_cuda_runtime(dev)
        if torch.cuda.is_current_stream_capturing():
            raise RuntimeError("construct the CudaEngine before CUDA graph capture: it allocates device memory "
                               "and copies its tables from the host")
        self._allocate(host, dev, step, dtype, read_prev, initial)
        self._launch(0, False)

    def _allocate(self, host: Any, dev: torch.device, step: int, dtype: Any, read_prev: bool,
                  initial: Sequence[float]) -> None:
        """The tables and the state on ``dev``, seeded with ``initial``, and the host mirror; no launch. (On a CPU
        device, the tests' way to check the host-side bookkeeping on real tensors.)"""
        code, _, _ = _dtype_info(dtype)
        groups = host.groups
        scale = np.asarray(host._core.scale(), dtype=np.float64)
        self._device = dev
        self._index = (0 if dev.index is None else int(dev.index)) if dev.type == "cuda" else -1
        self._dtype = dtype
        self._code = code
        self._read_prev = bool(read_prev)
        self._layout = StateLayout(groups, dtype)
        self._host = HostMirror(host, dtype, read_prev, initial)
        # The device starts from the same seed the host started from; the first write below then computes
        # f(step) on both sides (and loads the kernel before any capture).
        seed = self._layout.pack(int(step), np.asarray(initial, dtype=np.float64), np.asarray(initial))

        program = host._core.program
        with torch.cuda.device(self._index):
            self._ops = torch.frombuffer(bytearray(program.op_bytes()), dtype=torch.uint8).to(dev)
            self._aux = torch.from_numpy(np.array(program.aux_array(), dtype=np.float64)).to(dev)
            self._roots = torch.from_numpy(np.array(host._core.roots(), dtype=np.int32)).to(dev)
            self._scale = torch.from_numpy(scale.copy()).to(dev)
            self._state = torch.from_numpy(seed).to(dev)
            self._blocks_done = torch.zeros(1, dtype=torch.int32, device=dev)
        self._step_t, self._mirror_t, self._lr = self._layout.views(self._state)
        self._views: list[torch.Tensor] | None = None
        self._streams: set[int] = set()
        self._signals: torch.Tensor | None = None  # the factor table SIGNAL leaves read (attach_signals)
        self._signal_host: np.ndarray | None = None  # its last copy on the host, what the mirror reads
        self._signal_args: tuple[int, int] = (0, 0)
        self._args = (
            self._ops.data_ptr(), self._aux.data_ptr(), self._roots.data_ptr(), self._scale.data_ptr(), groups,
            self._step_t.data_ptr(), self._blocks_done.data_ptr(), self._mirror_t.data_ptr(), self._lr.data_ptr(),
            code, self._read_prev,
        )

    # ---- properties
    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> Any:
        return self._dtype

    @property
    def groups(self) -> int:
        return self._layout.groups

    @property
    def read_prev(self) -> bool:
        return self._read_prev

    @property
    def base_lrs(self) -> list[float]:
        return list(self._host.engine.base_lrs)

    @property
    def multipliers(self) -> list[float]:
        return list(self._host.engine.multipliers)

    @property
    def lr_buffer(self) -> torch.Tensor:
        """The [G] LR buffer on the device (the optimizer reads 0-d views of it)."""
        return self._lr

    @property
    def device_mirror(self) -> torch.Tensor:
        """The [G] float64 device mirror: the unrounded LRs the last launch computed (what resync() copies)."""
        return self._mirror_t

    @property
    def step(self) -> int:
        """The step as the host mirror knows it (no sync). See :attr:`stale`: after graph replays or skipped
        steps, :meth:`resync` first."""
        return self._host.step

    @step.setter
    def step(self, value: int) -> None:
        step = check.counter_step("step", value)
        self._check_not_capturing("setting the step")
        with torch.cuda.device(self._index):
            self._step_t.fill_(step)  # a fill launch on the current stream: no sync
        self._host.set_step(step)
        self._launch(0, False)

    @property
    def chainable(self) -> bool:
        """The program has chainable torch rules, which compute each LR from the previous one."""
        return bool(self._host.chainable)

    @property
    def stale(self) -> bool:
        """True when the host mirror may differ from the device: an advance went into a captured graph (replays
        are invisible to Python) or an advance had a ``found_inf`` flag. :meth:`resync` clears it."""
        return self._host.stale

    # ---- the hot path
    def _launch(self, found_inf_ptr: int, advance: bool) -> bool:
        """One core launch on the current stream of the engine's device; returns whether it was captured."""
        if torch.cuda.current_device() != self._index:
            with torch.cuda.device(self._index):
                return self._launch(found_inf_ptr, advance)
        if _raw_current_stream is not None:
            handle = int(_raw_current_stream(self._index))
        else:  # pragma: no cover - older torch
            handle = int(torch.cuda.current_stream(self._device).cuda_stream)
        capturing = torch.cuda.is_current_stream_capturing()
        if handle not in self._streams and not capturing:
            # Work enqueued on another stream keeps our memory from being reused if the engine dies first.
            stream = torch.cuda.current_stream(self._device)
            for t in (self._ops, self._aux, self._roots, self._scale, self._state, self._blocks_done):
                t.record_stream(stream)
            self._streams.add(handle)
        _core.advance_cuda(*self._args, found_inf_ptr, advance, handle, *self._signal_args)
        return capturing

    def attach_signals(self, factors: torch.Tensor | None) -> None:
        """From the next launch on, SIGNAL leaves read ``factors`` (float64 [G, S] on the engine's device, kept
        alive here; None detaches it). The host mirror reads the copy :meth:`sync_signals` last made (all 1 at
        first): it shows each signal factor as last synced."""
        if factors is None:
            self._signals, self._signal_host, self._signal_args = None, None, (0, 0)
            self._host.core.set_signals(0, 0)
            return
        if (factors.device != self._device or factors.dtype != torch.float64 or factors.dim() != 2
                or factors.shape[0] != self.groups or not factors.is_contiguous()):
            raise ValueError(f"factors must be a contiguous float64 [{self.groups}, S] tensor on {self._device}")
        slots = int(factors.shape[1])
        self._signal_host = np.ones((self.groups, slots), dtype=np.float64)
        self._host.core.set_signals(int(self._signal_host.ctypes.data), slots)  # checks the slot count
        self._signals = factors
        self._signal_args = (int(factors.data_ptr()), slots)
        self.write()  # the device LRs with the table's factors (a rebuild carries factors other than 1)

    def sync_signals(self) -> None:
        """Copies the factor table to the host (a sync, by design) and recomputes the mirror with it."""
        if self._signals is None or self._signal_host is None:
            return
        self._check_not_capturing("sync_signals()")
        self._signal_host[:] = self._signals.to("cpu").numpy()
        self._host.rewrite()

    def _found_inf_ptr(self, found_inf: Any) -> int:
        if not isinstance(found_inf, torch.Tensor):
            raise TypeError(f"found_inf must be a tensor, got {type(found_inf).__name__}")
        if found_inf.device != self._device:
            raise ValueError(f"found_inf is on {found_inf.device}; the engine reads it on {self._device} "
                             "(pass the scaler's per-device flag for this device, see scaler_found_inf)")
        if found_inf.dtype != torch.float32:
            raise TypeError(f"found_inf must be float32 (as torch.amp.GradScaler makes it), got {found_inf.dtype}")
        if found_inf.numel() != 1:
            raise ValueError(f"found_inf must have one element, got {found_inf.numel()}")
        return int(found_inf.data_ptr())

    def advance(self, found_inf: torch.Tensor | None = None) -> None:
        """Moves every group to the next step with one kernel launch on the current stream; no host sync.

        ``found_inf``: a 1-element float32 tensor on the engine's device (``torch.amp.GradScaler``'s flag, see
        :func:`scaler_found_inf`). Where it is non-zero when the launch runs, the device holds the step and
        leaves the LRs untouched, exactly as the optimizer skipped its update. The host mirror cannot know
        which happened without a sync: it assumes the step was taken and becomes :attr:`stale` until
        :meth:`resync`.

        Under CUDA graph capture the launch is recorded (each replay advances the device) and the host mirror
        does not move: it is :attr:`stale` until :meth:`resync`.
        """
        ptr = 0 if found_inf is None else self._found_inf_ptr(found_inf)
        if self._launch(ptr, True):
            self._host.record_capture()
        else:
            self._host.advance(maybe_skipped=ptr != 0)

    def write(self) -> None:
        """Rewrites every group's LR for the current step (no advance); one launch, no sync. Chainable rules
        apply once more, as :meth:`torchsched.Engine.write` does."""
        if self._launch(0, False):
            self._host.record_capture()
        else:
            self._host.rewrite()

    # ---- host-side views
    def lrs(self) -> list[float]:
        """The LRs of the current step as Python floats, from the host mirror (no sync; see :attr:`stale`)."""
        return self._host.lrs()

    get_last_lr = lrs

    def lr_tensors(self) -> list[torch.Tensor]:
        """One 0-d view of the LR buffer per group, on the device: what each param group's ``lr`` should be."""
        if self._views is None:
            self._views = [self._lr[g] for g in range(self.groups)]
        return list(self._views)

    def load_lrs(self, step: int, lrs: Sequence[float]) -> None:
        """Makes ``lrs`` the LRs of ``step`` (LRs computed on the host: a closed form, or values to keep): at once
        on the host mirror and, with one asynchronous copy from pinned memory on the current stream, on the
        device; no sync. The float64 mirror gets them exact, the LR buffer rounded to its dtype. Not under CUDA
        graph capture: it is a host-to-device copy."""
        step = check.counter_step("step", step)
        values = np.asarray(lrs, dtype=np.float64)
        if values.shape != (self.groups,) or not np.isfinite(values).all():
            raise ValueError(f"lrs must be {self.groups} finite values, got {list(lrs)!r}")
        self._check_not_capturing("load_lrs()")
        raw = self._layout.pack(step, values, values)
        staging = torch.empty(raw.size, dtype=torch.uint8, pin_memory=self._state.is_cuda)
        staging.numpy()[:] = raw
        with torch.cuda.device(self._index):
            self._state.copy_(staging, non_blocking=True)  # the pinned block is kept until the copy is done
        self._host.load(step, values, values.astype(self._host.shadow.dtype))

    def copy_lrs_from(self, other: CudaEngine) -> None:
        """Takes ``other``'s current LRs (its float64 mirror and LR buffer) as this engine's, keeping this engine's
        step: device-to-device copies on the current stream and the host mirror's values, no sync (unless
        ``other`` is :attr:`stale`: it is resynced first). For two engines writing the same param groups (two
        schedulers on one optimizer), where the next step must start from the other's LRs."""
        if not isinstance(other, CudaEngine):
            raise TypeError(f"other must be a CudaEngine, got {type(other).__name__}")
        if other.groups != self.groups or other.device != self.device:
            raise ValueError(f"other has {other.groups} groups on {other.device}; this engine has {self.groups} "
                             f"on {self.device}")
        if other.stale:
            other.resync()
        lrs = np.asarray(other.lrs(), dtype=np.float64)
        with torch.cuda.device(self._index):
            self._mirror_t.copy_(other._mirror_t)
            self._lr.copy_(other._mirror_t)  # the LR buffer is the mirror rounded to its dtype, as the host's below
        self._host.load(self._host.step, lrs, lrs.astype(self._host.shadow.dtype))

    def set_multiplier(self, group: int, value: float) -> None:
        """Changes one group's multiplier (on the host and, with one fill launch, on the device); it applies
        from the next advance()/write()."""
        if isinstance(group, bool) or not isinstance(group, numbers.Integral) or not 0 <= group < self.groups:
            raise ValueError(f"group must be an index in [0, {self.groups}), got {group!r}")
        self._check_not_capturing("set_multiplier")
        self._host.engine.set_multiplier(int(group), value)
        new_scale = float(self._host.core.scale()[int(group)])
        with torch.cuda.device(self._index):
            self._scale[int(group)].fill_(new_scale)

    # ---- syncing points
    def _check_not_capturing(self, what: str) -> None:
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            raise RuntimeError(f"{what} copies between host and device, which cannot be captured in a CUDA graph; "
                               "do it outside capture")

    def resync(self) -> int:
        """Waits for the device and copies its step, float64 mirror and LR buffer to the host mirror in one
        copy; returns the step. Call it after graph replays (or skipped steps) before reading :attr:`step`,
        :meth:`lrs` or writing a checkpoint. This is a host sync, by design; it is never called implicitly by
        :meth:`advance`."""
        self._check_not_capturing("resync()")
        torch.cuda.synchronize(self._device)  # work on every stream, replays included, is done
        raw = self._state.to("cpu").numpy()  # the one explicit copy
        step, mirror, out = self._layout.unpack(raw)
        self._host.load(step, mirror, out)
        return step

    def state_dict(self) -> dict[str, Any]:
        """Step and LRs, resynced from the device first (so never a stale step)."""
        self.resync()
        return {
            "step": self._host.step,
            "groups": self.groups,
            "dtype": str(self._dtype).replace("torch.", ""),
            "read_prev": self._read_prev,
            "mirror": [float(x) for x in self._host.mirror()],
            "lr_buffer": [float(x) for x in self._host.shadow],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores the step and LRs on the host and, with one copy, on the device (in place: a captured graph
        keeps working)."""
        self._check_not_capturing("load_state_dict()")
        step, mirror, out = check_state_dict(state, self.groups)
        raw = self._layout.pack(step, mirror, out)
        with torch.cuda.device(self._index):
            self._state.copy_(torch.from_numpy(raw))
            self._blocks_done.zero_()
        self._host.load(step, mirror, np.asarray(out, dtype=self._host.shadow.dtype))

    def __repr__(self) -> str:
        return (f"CudaEngine(groups={self.groups}, step={self.step}{' (stale)' if self.stale else ''}, "
                f"device={self._device}, dtype={self._dtype})")


def check_state_dict(state: Any, groups: int) -> tuple[int, list[float], list[float]]:
    """Validates a :meth:`CudaEngine.state_dict` for an engine of ``groups`` groups: (step, mirror, LR buffer)."""
    if not isinstance(state, dict):
        raise TypeError(f"state_dict must be a dict, got {type(state).__name__}")
    missing = [k for k in ("step", "mirror", "lr_buffer") if k not in state]
    if missing:
        raise KeyError(f"state_dict is missing {missing}")
    step = check.counter_step("state_dict['step']", state["step"])
    if state.get("groups", groups) != groups:
        raise ValueError(f"state_dict is for {state.get('groups')} groups, this engine has {groups}")
    mirror = check.real_list("state_dict['mirror']", state["mirror"], groups)
    out = check.real_list("state_dict['lr_buffer']", state["lr_buffer"], groups)
    return int(step), mirror, out
