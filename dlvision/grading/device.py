"""Device checks without a GPU: a stand-in CUDA device made of PyTorch's fake tensors.

A contract such as "returns a tensor on the device of its input" is broken by code that is right on the CPU: a
table made with ``torch.zeros(n)``, a buffer made without ``device=``, parameters made on the notebook's global
``device``. Grading machines often have no GPU, so such code would pass everywhere. Where a real CUDA device
exists, device checks run on it. Where none does, the grading kernel runs them on a stand-in:

- *on the device*: inputs become fake CUDA tensors (``FakeTensorMode``: shapes, dtypes and devices, no values),
  and an operation mixing them with CPU tensors fails exactly as on a GPU;
- *on a GPU machine*: ``torch.cuda.is_available()`` answers True, the graded code is defined afresh (so a global
  ``device`` becomes "cuda"), and the call gets CPU inputs: parameters or tensors made on that global device
  then meet CPU tensors and fail.

The stand-in computes no values (the CPU tests check them) and cannot run what needs a real GPU runtime
(``backward``) or a tensor's value (``.item()``, data-dependent shapes): such calls are *inconclusive*. Its
verdicts come from the kernel, so they may only fail a check, never pass one: a device error or an output on the
wrong device fails; anything else does not.
"""
from __future__ import annotations

import contextlib
import types
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: The key of the plain-data description of a fake tensor that crosses the wire.
STAND_IN = "__dlvision_stand_in__"

#: What a stand-in run that could not decide anything reports (fixed words, chosen on the kernel side).
INCONCLUSIVE = {"value": "it uses a tensor's value (.item(), a Python number, a data-dependent shape)",
                "runtime": "it needs a real GPU runtime (backward, streams)",
                "unsupported": "it uses an operation the stand-in does not support"}


@dataclass(frozen=True)
class StandInTensor:
    """What the trusted side learns of a tensor computed on the stand-in device: no values."""

    shape: tuple[int, ...]
    dtype: str
    device: str


# --- in the grading kernel ---------------------------------------------------------------------------------------

def on_stand_in(resolve, args: tuple, kwargs: dict, *, device: str | None, gpu_machine: bool):
    """Call ``resolve()`` (which returns the callable, defined inside the stand-in) on the stand-in: tensor
    arguments moved to ``device`` (fake CUDA) if it is given, CUDA pretended available if ``gpu_machine``.
    Returns the result with fake tensors described as plain data, or an inconclusive marker; a device error is
    raised."""
    from torch._subclasses.fake_tensor import DataDependentOutputException, DynamicOutputShapeException, \
        FakeTensorMode, UnsupportedOperatorException

    with _pretend_cuda(gpu_machine), _fake_parameter_moves(), FakeTensorMode(allow_non_fake_inputs=True) as mode, \
            _IndexDevices():
        moved = _map(lambda t: mode.from_tensor(t).to(device) if device else mode.from_tensor(t), (args, kwargs))
        try:
            return _describe(resolve()(*moved[0], **moved[1]))
        except (DataDependentOutputException, DynamicOutputShapeException) as error:
            return {STAND_IN: "inconclusive", "why": INCONCLUSIVE["value"], "_": type(error).__name__}
        except (UnsupportedOperatorException, NotImplementedError):
            return {STAND_IN: "inconclusive", "why": INCONCLUSIVE["unsupported"]}
        except RuntimeError as error:
            text = str(error)
            if "same device" in text or "expected device" in text:
                raise
            if "cuda" in text.lower() or "Context" in text or "driver" in text:
                return {STAND_IN: "inconclusive", "why": INCONCLUSIVE["runtime"]}
            raise


class _IndexDevices(TorchDispatchMode):
    """CUDA's rule for indexing, which fake tensors do not enforce: indices live on the CPU or on the device of the
    tensor they index (``torch.eye(n)[labels_on_cuda]`` fails on a GPU)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        aten = torch.ops.aten
        if func.overloadpacket in (aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_):
            indexed, indices = args[0], args[1]
            for index in indices:
                if isinstance(index, torch.Tensor) and index.device.type != "cpu" and index.device != indexed.device:
                    raise RuntimeError("indices should be either on cpu or on the same device as the indexed "
                                       f"tensor ({indexed.device.type})")
        return func(*args, **(kwargs or {}))


def _map(convert, value):
    if isinstance(value, torch.Tensor):
        return convert(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map(convert, v) for v in value)
    if isinstance(value, dict):
        return {k: _map(convert, v) for k, v in value.items()}
    return value


def _describe(value):
    """Fake tensors as plain descriptions; everything else as it is."""
    from torch._subclasses.fake_tensor import FakeTensor

    if isinstance(value, FakeTensor):
        return {STAND_IN: "tensor", "shape": list(value.shape), "dtype": str(value.dtype), "device": str(value.device)}
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, dict):
        return {k: _describe(v) for k, v in value.items()}
    return value


@contextlib.contextmanager
def _pretend_cuda(active: bool):
    """``torch.cuda.is_available()`` and ``device_count()`` answer as on a machine with one GPU."""
    if not active:
        yield
        return
    saved = torch.cuda.is_available, torch.cuda.device_count
    torch.cuda.is_available, torch.cuda.device_count = (lambda: True), (lambda: 1)
    try:
        yield
    finally:
        torch.cuda.is_available, torch.cuda.device_count = saved


@contextlib.contextmanager
def _fake_parameter_moves():
    """Let ``module.to(device)`` move fake parameters: PyTorch swaps them, and its swap refuses tensors that
    FakeTensorMode keeps weak references to. The references stay valid, so the check is skipped here."""
    import torch.utils

    saved = torch.utils.weakref
    torch.utils.weakref = types.SimpleNamespace(getweakrefs=lambda tensor: [], ref=saved.ref)
    try:
        yield
    finally:
        torch.utils.weakref = saved


def to_device(value, device: str):
    """Tensor arguments moved to a real device."""
    return _map(lambda t: t.to(device), value)


# --- on the trusted side -------------------------------------------------------------------------------------------

def from_wire(value):
    """Turn the stand-in's plain descriptions into StandInTensor (and inconclusive markers into Inconclusive)."""
    if isinstance(value, dict) and value.get(STAND_IN) == "tensor":
        return StandInTensor(tuple(int(s) for s in value.get("shape", [])), str(value.get("dtype")),
                             str(value.get("device")))
    if isinstance(value, dict) and value.get(STAND_IN) == "inconclusive":
        return Inconclusive(value.get("why") if value.get("why") in INCONCLUSIVE.values() else INCONCLUSIVE["unsupported"])
    if isinstance(value, (list, tuple)):
        return type(value)(from_wire(v) for v in value)
    if isinstance(value, dict):
        return {k: from_wire(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Inconclusive:
    """A stand-in run that could not decide anything, and why."""

    why: str


def tensors_in(value):
    """Every tensor (real or stand-in) inside a result."""
    if isinstance(value, (torch.Tensor, StandInTensor)):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from tensors_in(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from tensors_in(v)


def expect_on_device(got, device: str, expected: torch.Tensor, *, name: str = "the result", hint: str = "",
                     rtol: float | None = None, atol: float | None = None) -> None:
    """``got`` is ``expected`` on ``device``: values too on a real device (within ``rtol``/``atol``); shape, dtype
    and device on the stand-in."""
    import pytest

    from dlvision.checks import expect_close

    if isinstance(got, Inconclusive):
        pytest.skip(f"not checked on the stand-in device: {got.why}")
    wanted = torch.device(device).type
    if isinstance(got, StandInTensor):
        assert torch.device(got.device).type == wanted, (
            f"{name}: expected a tensor on {wanted}, got one on {got.device} (on a stand-in {wanted} device)."
            + (f"\nHint: {hint}" if hint else ""))
        assert got.shape == tuple(expected.shape) and got.dtype == str(expected.dtype), (
            f"{name}: expected shape {tuple(expected.shape)} and {expected.dtype}, got {got.shape} and {got.dtype}.")
        return
    expect_close(got, expected.to(got.device if isinstance(got, torch.Tensor) and got.device.type == wanted else
                                  device), rtol=rtol, atol=atol, name=name, hint=hint)


def expect_keeps_device(student, target, *args, hint: str = "", **kwargs) -> None:
    """Fail if ``target`` (a contract name, or a scenario taking ``device=``) breaks its device contract.

    Two runs, on a real GPU where there is one and on the stand-in where there is none: with the tensor arguments
    on the CUDA device (outputs must be there too), and on a GPU machine with CPU arguments (outputs must stay on
    the CPU, and nothing may be made on the notebook's global device). Only a device error or an output on the
    wrong device fails: the stand-in's verdicts come from the kernel, and cannot pass anything else.
    """
    import inspect

    from dlvision.grading.student import GraderError, StudentError

    label = target if isinstance(target, str) else target.__name__
    if not isinstance(target, str) and "device" not in inspect.signature(target).parameters:
        raise GraderError(f"the scenario {label} passed to expect_keeps_device must take a device= parameter.")
    runs = [("cuda", False, "its inputs are on a CUDA device")]
    if not torch.cuda.is_available():
        runs.append(("cpu", True, "it runs on a machine with a GPU, with its inputs on the CPU"))
    for device, gpu_machine, situation in runs:
        view = student.on(None if device == "cpu" else device, gpu_machine=gpu_machine)
        try:
            if isinstance(target, str):
                got = getattr(view, target)(*args, **kwargs)
            else:
                got = view.run(target, *args, device=device, **kwargs)
        except StudentError as error:
            words = f"{error} {getattr(error, 'kernel_message', '')}"
            if "same device" in words or "expected device" in words:
                raise AssertionError(f"{label} mixes devices when {situation}: {error}"
                                     + (f"\nHint: {hint}" if hint else "")) from None
            continue  # not device evidence: the CPU tests judge the code's other errors
        for tensor in tensors_in(got):
            if torch.device(tensor.device).type != device:
                raise AssertionError(f"{label} returned a tensor on {tensor.device} when {situation}; results stay on "
                                     f"the device of the inputs." + (f"\nHint: {hint}" if hint else ""))
