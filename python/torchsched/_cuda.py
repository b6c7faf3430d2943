"""The CUDA engine: every param group's LR advanced by one kernel launch per step, with no host sync.

A :class:`CudaEngine` owns, on the params' CUDA device and allocated by torch (so the caching allocator and
CUDA-graph memory pools see it): the compiled schedule tables, the int64 step counter, a float64 mirror of
the last LRs, and the LR buffer the optimizer reads (float32 by default; one 0-d view per group, see
:meth:`CudaEngine.lr_tensors`). :meth:`CudaEngine.advance` is one launch of the compiled core on the current
torch stream: it moves the device step on and writes every group's LR. Captured in a CUDA graph, each replay
advances the schedule with no host involvement.

**Host mirror.** The engine also runs the same program on the host in double precision, in lockstep with
the Python calls, so :meth:`CudaEngine.lrs` / :meth:`get_last_lr` / :attr:`step` answer without a sync. The
host cannot see two things, and the mirror is then *possibly stale* (:attr:`CudaEngine.stale`):

* graph replays (Python does not run during them): an ``advance()`` recorded into a graph does not move the
  mirror, and each replay moves the device on;
* a step skipped on the device because ``found_inf`` was non-zero (``advance(found_inf=...)``, as
  ``torch.amp.GradScaler`` reports an inf/NaN gradient): the mirror assumes the step was taken.

:meth:`CudaEngine.resync` is the one documented call that brings the mirror back: it waits for the device
and copies the step, the mirror and the LR buffer to the host in a single explicit copy.
:meth:`CudaEngine.state_dict` always resyncs first, so a checkpoint never holds a stale step.

The helpers :func:`check_optimizer_for_device_lrs` and :func:`replace_shared_lr_tensors` make sure a torch
optimizer really reads these tensors on the device (torch silently falls back to ``.item()`` for several
optimizer paths, and shares one default ``lr`` tensor across groups).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from . import _core
from ._engine import FLOAT32, FLOAT64, Engine, step_count
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
_raw_current_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)

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


# ---- devices ---------------------------------------------------------------------------------------

def _tensors_of(params: Any) -> list[torch.Tensor]:
    """Tensors from params, a param group dict, a list of groups, or an optimizer."""
    if isinstance(params, torch.optim.Optimizer):
        params = params.param_groups
    if isinstance(params, torch.Tensor):
        return [params]
    if isinstance(params, dict):
        params = params.get("params", [])
        return _tensors_of(params)
    out: list[torch.Tensor] = []
    for item in params:
        if isinstance(item, dict):
            out.extend(_tensors_of(item))
        elif isinstance(item, torch.Tensor):
            out.append(item)
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], torch.Tensor):
            out.append(item[1])  # named_parameters()
        else:
            raise TypeError(f"params must hold tensors or param groups, got {type(item).__name__}")
    return out


def _params_device(params: Any) -> torch.device | None:
    devices: list[torch.device] = []
    for t in _tensors_of(params):
        if t.device not in devices:
            devices.append(t.device)
    if not devices:
        return None
    if len(devices) > 1:
        raise ValueError(f"params are on several devices ({', '.join(map(str, devices))}); one engine serves "
                         "one device: build one engine per device")
    return devices[0]


def resolve_device(device: Any = None, params: Any = None) -> torch.device:
    """The one CUDA device (with its index) of ``device`` and/or ``params``; ValueError when they are not on a
    single CUDA device or disagree."""
    pdev = _params_device(params) if params is not None else None
    if pdev is not None and pdev.type != "cuda":
        raise ValueError(f"params are on {pdev}, not on a CUDA device: the CUDA engine writes device memory "
                         "(for CPU params use torchsched.Engine, which writes CPU buffers)")
    if device is not None:
        if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
            raise TypeError(f"device must be a torch.device, a string or an index, got {device!r}")
        try:
            dev = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"device {device!r} is not a device: {exc}") from None
        if dev.type != "cuda":
            raise ValueError(f"device must be a CUDA device, got {dev} (for CPU params use torchsched.Engine)")
        if pdev is not None:
            same = dev.index is None or dev.index == pdev.index
            if not same:
                raise ValueError(f"device={dev} but the params are on {pdev}: the LR buffer must live on the "
                                 "params' device")
            return pdev
        if dev.index is None:
            if not torch.cuda.is_available():
                raise RuntimeError(f"device={dev} names no index and torch sees no CUDA device (torch "
                                   f"{torch.__version__}, CUDA {torch.version.cuda})")
            dev = torch.device("cuda", torch.cuda.current_device())
        return dev
    if pdev is None:
        raise ValueError("pass device= or params= (the params' CUDA device holds the engine's state)")
    return pdev


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
        self.step = step_count(step)
        self.core.step = self.step
        self.core.set_mirror(np.asarray(mirror, dtype=np.float64))
        self.shadow[:] = np.asarray(out, dtype=self.shadow.dtype)
        self._evaluated_at = self.step
        self.possibly_skipped = False
        self.captured = False


# ---- the engine ------------------------------------------------------------------------------------

def _finite_values(name: str, values: Any, count: int) -> list[float]:
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name}[{i}] must be a real number, got {v!r}")
        if not math.isfinite(float(v)):
            raise ValueError(f"{name}[{i}] must be finite, got {v!r}")
        out.append(float(v))
    if len(out) != count:
        raise ValueError(f"{name} has {len(out)} entries for {count} groups")
    return out


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
            if isinstance(r, bool) or not isinstance(r, numbers.Integral):
                raise TypeError(f"roots[{i}] must be an integer, got {r!r}")
        base = _finite_values("scale", list(scale), len(root_list))
        for i, v in enumerate(base):
            if v < 0:
                raise ValueError(f"scale[{i}] must be >= 0, got {v!r}")
        step = step_count(step)
        # The core checks every root against the program (ValueError naming it).
        self._core: Any = _core.Engine(program, np.asarray(root_list, dtype=np.int32), np.asarray(base, dtype=np.float64),
                                  int(step))
        self.base_lrs: list[float] = base
        self.multipliers: list[float] = [1.0] * len(base)

    @property
    def groups(self) -> int:
        return int(self._core.groups)

    def set_multiplier(self, group: int, value: float) -> None:
        v = _finite_values("multiplier", [value], 1)[0]
        if v < 0:
            raise ValueError(f"multiplier must be >= 0, got {value!r}")
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
        code, _, _ = _dtype_info(dtype)
        groups = host.groups
        scale = np.asarray(host._core.scale(), dtype=np.float64)
        initial = list(scale) if initial_lrs is None else _finite_values("initial_lrs", list(initial_lrs), groups)
        dev = resolve_device(device, params)
        _require_cuda_runtime(dev)
        if torch.cuda.is_current_stream_capturing():
            raise RuntimeError("construct the CudaEngine before CUDA graph capture: it allocates device memory "
                               "and copies its tables from the host")

        self._device = dev
        self._index = 0 if dev.index is None else int(dev.index)
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
        self._args = (
            self._ops.data_ptr(), self._aux.data_ptr(), self._roots.data_ptr(), self._scale.data_ptr(), groups,
            self._step_t.data_ptr(), self._blocks_done.data_ptr(), self._mirror_t.data_ptr(), self._lr.data_ptr(),
            code, self._read_prev,
        )
        self._launch(0, False)

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
        step = step_count(value)
        self._check_not_capturing("setting the step")
        with torch.cuda.device(self._index):
            self._step_t.fill_(step)  # a fill launch on the current stream: no sync
        self._host.set_step(step)
        self._launch(0, False)

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
        _core.advance_cuda(*self._args, found_inf_ptr, advance, handle)
        return capturing

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
    step = step_count(state["step"], "state_dict['step']")
    if state.get("groups", groups) != groups:
        raise ValueError(f"state_dict is for {state.get('groups')} groups, this engine has {groups}")
    mirror = _finite_values("state_dict['mirror']", list(state["mirror"]), groups)
    out = _finite_values("state_dict['lr_buffer']", list(state["lr_buffer"]), groups)
    return int(step), mirror, out


# ---- GradScaler ------------------------------------------------------------------------------------

def scaler_found_inf(scaler: Any, optimizer: torch.optim.Optimizer, device: Any) -> torch.Tensor:
    """The float32 inf/NaN flag ``scaler`` recorded for ``optimizer`` on ``device``, to pass to
    :meth:`CudaEngine.advance`. Call it after ``scaler.step(optimizer)`` and before ``scaler.update()`` (which
    discards it). When the optimizer's params span several devices, it is the sum of their flags on ``device``
    (the optimizer skips if any is set). Reads the scaler's per-optimizer state (torch has no public accessor
    for it); no sync."""
    if not isinstance(scaler, torch.amp.GradScaler):
        raise TypeError(f"scaler must be a torch.amp.GradScaler, got {type(scaler).__name__}")
    if not scaler.is_enabled():
        raise ValueError("the GradScaler is disabled: it records no found_inf (advance without one)")
    states = getattr(scaler, "_per_optimizer_states", None)
    if states is None:  # pragma: no cover - a torch that changed GradScaler's internals
        raise TypeError("this torch.amp.GradScaler keeps no per-optimizer state that torchsched knows how to read")
    state = states.get(id(optimizer))
    per_device = {} if state is None else state.get("found_inf_per_device", {})
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    flag = per_device.get(dev)
    if flag is None:
        have = ", ".join(map(str, per_device)) or "none"
        raise ValueError(f"the scaler has no found_inf for this optimizer on {dev} (devices recorded: {have}); "
                         "call it after scaler.step(optimizer) and before scaler.update()")
    if len(per_device) > 1:
        # The optimizer skips when any of its devices found an inf (GradScaler sums the flags), so the
        # engine must read that sum, not its own device's flag. Async copies: no sync.
        flag = torch.stack([t.to(dev, non_blocking=True) for t in per_device.values()]).sum()
    return flag


# ---- optimizers ------------------------------------------------------------------------------------

_VERIFIED = "Adam, AdamW (fused=True or capturable=True), SGD (fused=True), Adagrad (fused=True)"


def _optimizer_kind(optimizer: Any) -> str | None:
    if isinstance(optimizer, torch.optim.Adam):  # AdamW subclasses Adam
        return "adam"
    if isinstance(optimizer, torch.optim.AdamW):  # pragma: no cover - older torch kept AdamW separate
        return "adam"
    if isinstance(optimizer, torch.optim.SGD):
        return "sgd"
    if isinstance(optimizer, torch.optim.Adagrad):
        return "adagrad"
    return None


def check_group_flags(index: int, group: dict[str, Any], kind: str | None, cls_name: str, lr_dtype: Any, *,
                      capture: bool = False, allow_unverified: bool = False) -> None:
    """Raises when a param group on a CUDA device would not apply a device LR tensor without a host sync (or
    could not be captured). ``kind`` is ``"adam"``, ``"sgd"``, ``"adagrad"`` or None (another optimizer)."""
    where = f"param group {index} of {cls_name}"
    fused = bool(group.get("fused"))
    capturable = bool(group.get("capturable"))
    if kind is None:
        if allow_unverified:
            return
        raise TypeError(f"{where}: torchsched has not verified that {cls_name} applies a tensor LR on the device "
                        f"without calling .item(); verified: {_VERIFIED}. Pass allow_unverified=True to skip this "
                        "check at your own risk")
    if kind == "adam":
        if not fused and not capturable:
            foreach = group.get("foreach")
            path = ("foreach=True rejects a tensor LR unless capturable=True" if foreach else
                    "torch then takes its single-tensor path (it silently turns off foreach for a tensor LR), "
                    "which converts the LR with .item() for every parameter: a host sync per parameter per step, "
                    "and a value frozen into any captured graph")
            raise ValueError(f"{where} has fused={group.get('fused')!r} and capturable=False: {path}. Construct it "
                             "with fused=True (fastest) or capturable=True")
        if capture and not capturable:
            raise ValueError(f"{where} has capturable=False: torch's CUDA-graph capture health check "
                             "(Optimizer._accelerator_graph_capture_health_check) raises when step() is captured "
                             "unless every param group has capturable=True, fused or not. Construct it with "
                             "capturable=True (with fused=True for speed)")
    elif kind in ("sgd", "adagrad"):
        if not fused:
            detail = ("applies a tensor LR as alpha=-lr on both its single-tensor and foreach paths, which calls "
                      ".item()" if kind == "sgd" else
                      "converts a tensor LR with .item() on its single-tensor path (value=-clr) and, on its foreach "
                      "path, keeps its step counter on the host and derives each parameter's LR there")
            raise ValueError(f"{where} has fused={group.get('fused')!r}: torch {detail}, so the LR would cost a host "
                             "sync every step and be frozen into any captured graph. Construct it with fused=True")
    if fused and lr_dtype is not None and lr_dtype != torch.float32:
        raise TypeError(f"{where} is fused: torch's fused CUDA kernels read the LR tensor as float32, got {lr_dtype}; "
                        "use lr_dtype=torch.float32 in wrap(), dtype=torch.float32 for a CudaEngine")


def refuse_cpu_lr_for_cuda_params(index: int, lr: Any, param_device: torch.device | None, fix: str) -> None:
    """A CPU LR tensor with CUDA params is an error, not a fallback (wrap() and the lr_scheduler classes)."""
    if (isinstance(lr, torch.Tensor) and lr.device.type == "cpu" and param_device is not None
            and param_device.type == "cuda"):
        raise ValueError(f"param group {index}: lr is a CPU tensor but the params are on {param_device}. torch's "
                         "fused CUDA kernels read a CPU LR with .item() when step() is called, so a captured CUDA "
                         "graph would freeze the value it had at capture time (and every eager step would pay a "
                         f"host read). {fix}")


def check_group_lr(index: int, lr: Any, param_device: torch.device) -> None:
    """Raises when a group's ``lr`` is not a one-element LR tensor of its own on ``param_device``."""
    where = f"param group {index}"
    if not isinstance(lr, torch.Tensor):
        raise ValueError(f"{where}: lr is a Python {type(lr).__name__} ({lr!r}), so the optimizer never reads a device "
                         "LR; install the engine's LR tensors with replace_shared_lr_tensors(optimizer, engine)")
    refuse_cpu_lr_for_cuda_params(index, lr, param_device, f"Put the LR on {param_device} (the engine's lr_tensors())")
    if lr.device != param_device:
        raise ValueError(f"{where}: lr is on {lr.device} but the params are on {param_device}; torch's fused kernels "
                         "require the LR on the params' device")
    if lr.numel() != 1:
        raise ValueError(f"{where}: lr must have one element, got shape {tuple(lr.shape)}")
    if lr.dtype not in _DTYPES:
        raise TypeError(f"{where}: lr must be float32 or float64, got {lr.dtype}")
    if lr.requires_grad:
        raise ValueError(f"{where}: lr requires grad; a scheduled LR must not (torch takes a differentiable path)")


def _group_param_device(index: int, group: dict[str, Any]) -> torch.device | None:
    try:
        return _params_device(group.get("params", []))
    except ValueError as exc:
        raise ValueError(f"param group {index}: {exc}") from None


def check_optimizer_for_device_lrs(optimizer: torch.optim.Optimizer, engine: Any = None, *, capture: bool = False,
                                   allow_unverified: bool = False) -> None:
    """Raises a ValueError/TypeError naming the group and the fix when ``optimizer`` would not read each group's
    LR from its own device tensor without a host sync:

    * a group's ``lr`` is a Python number, a CPU tensor with CUDA params (its value would be frozen into a
      captured graph), a tensor on another device, or shared with another group;
    * a path on which torch calls ``.item()`` on a tensor LR: Adam/AdamW neither fused nor capturable, SGD or
      Adagrad not fused (torch falls back silently);
    * ``capture=True`` (the step will be captured in a CUDA graph) and Adam/AdamW without ``capturable=True``,
      which torch's capture health check demands;
    * a fused optimizer with a float64 LR (fused kernels read float32);
    * with ``engine``: a group whose ``lr`` is not that engine's view for the group.

    Groups whose params are on the CPU only need their own LR tensor (a CPU ``.item()`` is not a device sync).
    Optimizers other than Adam, AdamW, SGD and Adagrad raise TypeError unless ``allow_unverified=True``.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    groups = optimizer.param_groups
    kind = _optimizer_kind(optimizer)
    cls_name = type(optimizer).__name__
    views = _engine_views(engine, len(groups)) if engine is not None else None
    seen: dict[tuple[torch.device, int], int] = {}
    for i, group in enumerate(groups):
        lr = group.get("lr")
        device = _group_param_device(i, group)
        if isinstance(lr, torch.Tensor) and lr.device.type != "meta":  # meta tensors have no addresses
            ptr = (lr.device, lr.data_ptr())
            if ptr in seen:
                raise ValueError(f"param groups {seen[ptr]} and {i} share one LR tensor (torch's default lr= tensor is "
                                 "shared by every group), so one group's schedule would overwrite the other's; give "
                                 "each group its own with replace_shared_lr_tensors(optimizer, engine)")
            seen[ptr] = i
        if device is not None and device.type == "cuda":
            check_group_lr(i, lr, device)
            check_group_flags(i, group, kind, cls_name, lr.dtype if isinstance(lr, torch.Tensor) else None,
                              capture=capture, allow_unverified=allow_unverified)
        elif device is not None and isinstance(lr, torch.Tensor) and lr.device != device:
            raise ValueError(f"param group {i}: lr is on {lr.device} but the params are on {device}")
        if views is not None:
            view = views[i]
            if not (isinstance(lr, torch.Tensor) and lr.device == view.device and lr.data_ptr() == view.data_ptr()
                    and lr.dtype == view.dtype):
                raise ValueError(f"param group {i}: lr is not the engine's LR tensor for group {i}; call "
                                 "replace_shared_lr_tensors(optimizer, engine)")


def _engine_views(engine: Any, groups: int) -> list[torch.Tensor]:
    if isinstance(engine, torch.Tensor):
        if engine.dim() != 1 or engine.numel() != groups:
            raise ValueError(f"the LR buffer must be 1-d with one element per group ({groups}), got shape "
                             f"{tuple(engine.shape)}")
        if engine.dtype not in _DTYPES:
            raise TypeError(f"the LR buffer must be float32 or float64, got {engine.dtype}")
        return [engine[g] for g in range(groups)]
    if not hasattr(engine, "lr_tensors"):
        raise TypeError(f"engine must be a CudaEngine (or a 1-d LR buffer tensor), got {type(engine).__name__}")
    views = list(engine.lr_tensors())
    if len(views) != groups:
        raise ValueError(f"the engine has {len(views)} groups, the optimizer {groups}")
    return views


def replace_shared_lr_tensors(optimizer: torch.optim.Optimizer, engine: Any, *, capture: bool = False,
                              allow_unverified: bool = False) -> list[torch.Tensor]:
    """Gives each param group its own LR tensor: the engine's 0-d view for that group (``engine`` may also be a
    1-d LR buffer tensor). torch's ``lr=`` tensor default is one tensor shared by every group, so an engine
    writing per-group LRs must replace it.

    Checks first (and leaves the optimizer untouched on failure) that every group's params are on the engine's
    device and that the optimizer applies tensor LRs there without ``.item()`` (see
    :func:`check_optimizer_for_device_lrs`, whose other checks run once the tensors are in). Returns the
    installed tensors.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    groups = optimizer.param_groups
    views = _engine_views(engine, len(groups))
    kind = _optimizer_kind(optimizer)
    cls_name = type(optimizer).__name__
    for i, (group, view) in enumerate(zip(groups, views)):
        device = _group_param_device(i, group)
        if device is None:
            continue
        if device != view.device:
            if device.type == "cuda" and view.device.type == "cpu":
                raise ValueError(f"param group {i}: the LR buffer is on the CPU but the params are on {device}: a CPU "
                                 "LR tensor would be read with .item() by fused CUDA kernels and frozen into a captured "
                                 "graph; use a CudaEngine on the params' device")
            raise ValueError(f"param group {i}: params are on {device}, the engine's LR buffer on {view.device}")
        if device.type == "cuda":
            check_group_flags(i, group, kind, cls_name, view.dtype, capture=capture, allow_unverified=allow_unverified)
    for group, view in zip(groups, views):
        group["lr"] = view
    check_optimizer_for_device_lrs(optimizer, engine, capture=capture, allow_unverified=allow_unverified)
    return views


def params_of(optimizer: torch.optim.Optimizer) -> Iterable[torch.Tensor]:
    """Every parameter of an optimizer (to pass as ``params=`` to :class:`CudaEngine`)."""
    for group in optimizer.param_groups:
        yield from group["params"]


# ---- the wrap() binding ----------------------------------------------------------------------------

class CudaBinding:
    """Param groups driven by a :class:`CudaEngine`, with the interface of ``optim._HostBinding`` (what
    ``wrap()`` calls): ``engine``, ``buffer``, ``views``, ``install(groups)``, ``advance(groups, found_inf)``,
    ``advancer(groups)`` and ``lrs()``.

    Tensor-LR groups get the engine's 0-d views; float-LR groups (a mixed optimizer) get the host mirror's
    floats after each advance. ``advance`` with a device ``found_inf`` (GradScaler with a fused optimizer)
    passes it to the kernel, which holds the schedule on the device; it returns True because the host cannot
    know whether the step was skipped without a sync (the engine is then :attr:`CudaEngine.stale`).
    """

    def __init__(self, engine: CudaEngine, tensor_groups: Sequence[bool]) -> None:
        if len(tensor_groups) != engine.groups:
            raise ValueError(f"{len(tensor_groups)} groups for an engine of {engine.groups}")
        self.engine = engine
        self.buffer: torch.Tensor = engine.lr_buffer
        views = engine.lr_tensors()
        self.views: list[torch.Tensor | None] = [v if t else None for v, t in zip(views, tensor_groups)]
        self._float_idx = [g for g, t in enumerate(tensor_groups) if not t]

    def install(self, groups: list[dict[str, Any]]) -> None:
        lrs = self.engine.lrs()
        for g, view in enumerate(self.views):
            groups[g]["lr"] = view if view is not None else lrs[g]

    def _set_floats(self, groups: list[dict[str, Any]]) -> None:
        if self._float_idx:
            lrs = self.engine.lrs()
            for g in self._float_idx:
                groups[g]["lr"] = lrs[g]

    def advance(self, groups: list[dict[str, Any]], found_inf: Any = None) -> bool:
        if found_inf is None:
            self.engine.advance()
        elif isinstance(found_inf, torch.Tensor) and found_inf.device.type == "cuda":
            self.engine.advance(found_inf)
        elif bool(found_inf):  # a host flag (not what a CUDA GradScaler makes): skipped, known on the host
            return False
        else:
            self.engine.advance()
        self._set_floats(groups)
        return True

    def advancer(self, groups: list[dict[str, Any]]) -> Any:
        """A no-argument callable advancing every group (one launch; no checks on the hot path)."""
        if not self._float_idx:
            return self.engine.advance

        def mixed() -> None:
            self.engine.advance()
            self._set_floats(groups)
        return mixed

    def lrs(self) -> list[float]:
        return self.engine.lrs()
