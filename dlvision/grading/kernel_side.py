"""The part of the harness that runs inside the grading kernel (a sandboxed kernel of its own per submission).

It builds the student's graded code (see :mod:`~dlvision.grading.submission`) as a module, then carries out the
trusted side's requests one at a time: call a contract name, run a grader scenario, read a value, time calls.
It is untrusted by construction: the trusted side decodes each reply safely and judges it against its own
references, so nothing here can make a test pass. The graded code cannot name this module (the analysis refuses
it), and scenarios run in a namespace of their own that holds pristine builtins and the contract names only.
"""
from __future__ import annotations

import builtins
import json
import sys
import traceback
import types

import torch
from torch.overrides import TorchFunctionMode, resolve_name

from dlvision.grading import wire
from dlvision.grading.device import on_stand_in, to_device

#: Builtins as they were before any student code ran; scenarios get these.
_PRISTINE_BUILTINS = dict(builtins.__dict__)
_THREADS = torch.get_num_threads()
_STATE: dict = {"module": None, "contract": ()}

SCENARIO_FILENAME = "<dlvision grader scenario>"


def load(payload: str) -> None:
    """Build the graded code's module from ``payload`` (JSON from the trusted side) and reply with what failed.

    The module runs with the builtins the trusted side names (nothing that runs code from strings or opens
    files) and an ``__import__`` that imports allowed modules only, giving proxies for the limited ones.
    """
    spec = json.loads(payload)
    module, failures = _build(spec)
    _STATE.update(module=module, contract=tuple(spec["contract"]), spec=spec)
    _publish(spec["nonce"], {"ok": True, "payload": wire.encode(failures)})


def _build(spec: dict) -> tuple[types.ModuleType, list]:
    """A fresh module holding the graded code, and what failed to define."""
    module = types.ModuleType("submission")
    module.__dict__["__builtins__"] = {**{n: getattr(builtins, n) for n in spec["builtins"] if hasattr(builtins, n)},
                                       "__import__": _guarded_import, "open": _no_files}
    sys.modules["submission"] = module
    failures = []
    for unit in spec["units"]:
        try:
            code = compile(unit["source"], unit["filename"], "exec", flags=spec["future_flags"], dont_inherit=True)
            exec(code, module.__dict__)
        except BaseException as error:  # noqa: BLE001 - a definition that raises is reported, the rest still load
            failures.append(describe(error))
    return module, failures


class _Namespace(types.SimpleNamespace):
    """A proxy module: only the parts of a limited module that graded code may use."""


class _Stream:
    """Writing to the kernel's stdout or stderr, and nothing else of the stream object."""

    def __init__(self, stream):
        self._write, self._flush = stream.write, stream.flush

    def write(self, text):
        return self._write(text)

    def flush(self):
        return self._flush()


def _proxies() -> dict:
    import os

    path = _Namespace(**{name: getattr(os.path, name) for name in (
        "join", "exists", "isfile", "isdir", "basename", "dirname", "splitext", "split", "abspath", "normpath")})
    return {"sys": _Namespace(stdout=_Stream(sys.stdout), stderr=_Stream(sys.stderr), float_info=sys.float_info,
                              maxsize=sys.maxsize, version_info=sys.version_info, byteorder=sys.byteorder,
                              getrecursionlimit=sys.getrecursionlimit),
            "os": _Namespace(sep=os.sep, getcwd=os.getcwd, listdir=os.listdir, makedirs=os.makedirs, path=path),
            "os.path": path}


def _no_files(file, *args, **kwargs):
    """The graded code's ``open``: library code that opens files through its caller's builtins (numpy's
    ``tofile``) gets a clear error instead of a bare SystemError."""
    raise PermissionError("graded code may not open files; write files in your notebook's own cells instead")


def _guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    """The graded code's ``__import__``: sys and os as proxies, the modules of RUNTIME_DENIED never."""
    from dlvision.grading.analysis import import_allowed

    proxies = _proxies()
    if not level and name in proxies:
        return proxies[name] if fromlist or "." not in name else proxies[name.split(".")[0]]
    if level or not import_allowed(name):
        raise ImportError(f"graded code may not import {name}")
    return __import__(name, globals, locals, fromlist, level)


def serve(request: str, nonce: str) -> None:
    """Carry out one request and publish the reply, tagged with the request's nonce."""
    try:
        decoded = wire.decode(request, 1 << 30, max_elements=1 << 40, max_string_chars=None)
    except wire.WireError as error:
        _publish(nonce, {"ok": False, "error": {"type": "dlvision.RequestError", "message": str(error), "frames": []}})
        return
    try:
        _reset_torch()
        result = _plain(_carry_out(decoded))
    except BaseException as error:  # noqa: BLE001 - every failure of student code is reported, not raised
        _publish(nonce, {"ok": False, "error": describe(error)})
        return
    try:
        reply = {"ok": True, "payload": wire.encode(result)}
    except Exception:  # noqa: BLE001 - torch.save refuses what is not plain data
        culprit = type(_not_plain(result))
        reply = {"ok": False, "unreadable": f"{culprit.__module__}.{culprit.__qualname__}"}
    _publish(nonce, reply)


def _publish(nonce: str, reply: dict) -> None:
    from IPython.display import publish_display_data

    publish_display_data({wire.REPLY_MIME: {**reply, "nonce": nonce}})


def _reset_torch() -> None:
    """Undo global torch settings a previous call may have changed."""
    torch.set_grad_enabled(True)
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(_THREADS)


def _contract(module=None) -> dict:
    """The contract names' objects; never a builtin's name, which a scenario must find pristine."""
    module = module or _STATE["module"]
    return {name: module.__dict__[name] for name in _STATE["contract"]
            if name in module.__dict__ and name not in _PRISTINE_BUILTINS}


def _target(request: dict, module=None):
    """The callable (or value) a request names: a contract name, or a scenario defined among the contract names."""
    kind, name = request["kind"], request["name"]
    contract = _contract(module)
    if kind == "scenario":
        scope = {"__builtins__": dict(_PRISTINE_BUILTINS), "__name__": "scenario", **contract}
        exec(compile(request["source"], SCENARIO_FILENAME, "exec", dont_inherit=True), scope)
        return scope[name]
    if name not in contract:
        raise NameError(f"name '{name}' is not defined")
    return contract[name]


def _carry_out(request: dict):
    kind = request["kind"]
    if kind == "prepare":
        return _prepare(request)
    device, gpu_machine = request.get("device"), request.get("gpu_machine", False)
    args, kwargs = request["args"], request["kwargs"]
    if (device or gpu_machine) and not torch.cuda.is_available():
        # The stand-in: a GPU machine defines the graded code afresh, so that a global `device` sees "cuda".
        return on_stand_in(lambda: _target(request, _build(_STATE["spec"])[0] if gpu_machine else None), args,
                           kwargs, device=device, gpu_machine=gpu_machine)
    if device:
        args, kwargs = to_device((args, kwargs), device)
    target = _target(request)
    if kind == "value":
        return target
    if kind == "timed":
        return _timed(target, request)
    if request.get("record_calls"):
        with _CallRecorder() as recorder:
            result = target(*args, **kwargs)
        return {"result": result, "torch_calls": sorted(recorder.called)}
    return target(*args, **kwargs)


def _prepare(request: dict) -> int:
    """Make ``number`` inputs with the grader's ``make_inputs`` from fresh seeds and keep them for one timed
    request; only the calls are timed, not the making of their inputs."""
    scope = {"__builtins__": dict(_PRISTINE_BUILTINS), "__name__": "scenario"}
    exec(compile(request["source"], SCENARIO_FILENAME, "exec", dont_inherit=True), scope)
    make_inputs = scope[request["make_inputs"]]
    inputs = [make_inputs(torch.Generator().manual_seed(request["seed"] + i)) for i in range(request["number"])]
    _STATE["inputs"] = to_device(inputs, request["device"]) if request.get("device") else inputs
    return len(_STATE["inputs"])


def _timed(target, request: dict) -> list:
    """Call ``target`` once on each prepared input (none repeats) and return a sample of each output.

    The trusted side times this request on its own clock and checks every sample against its reference, so
    results are used, not thrown away, and no earlier input can be looked up.
    """
    inputs, _STATE["inputs"] = _STATE.pop("inputs", []), []
    return [sample_outputs(target(*args, **kwargs), request["positions"]) for args, kwargs in inputs]


def sample_outputs(out, positions: int):
    """A few entries of each output tensor, at positions spread over it (the trusted side applies the same rule)."""
    if isinstance(out, torch.Tensor):
        flat = out.detach().reshape(-1)
        if flat.numel() == 0:
            return flat
        index = torch.linspace(0, flat.numel() - 1, min(positions, flat.numel())).round().long()
        return flat[index.to(flat.device)].cpu()
    if isinstance(out, (list, tuple)):
        return [sample_outputs(o, positions) for o in out]
    return out


class _CallRecorder(TorchFunctionMode):
    """Records the public torch functions called while it is active (off-limits checks at run time)."""

    def __init__(self):
        super().__init__()
        self.called: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        try:
            self.called.add(resolve_name(func) or getattr(func, "__name__", repr(func)))
        except Exception:  # noqa: BLE001 - naming a function must never break the student's call
            pass
        return func(*args, **(kwargs or {}))


def _not_plain(value):
    """The innermost value inside ``value`` that is not plain data (``value`` itself if none is found)."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, dict):
        items = list(value.keys()) + list(value.values())
    else:
        return value
    for item in items:
        try:
            wire.encode(item)
        except Exception:  # noqa: BLE001 - the one that torch.save refuses
            return _not_plain(item)
    return value


def _plain(value):
    """Detach tensors so that only their data crosses; other values are left to the safe encoder."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if type(value) in (list, tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def describe(error: BaseException) -> dict:
    """The error as plain data: its class, the first line of its message, and the student's own frames."""
    frames = [(frame.filename, frame.lineno) for frame in traceback.extract_tb(error.__traceback__)
              if frame.filename.startswith("<cell ")]
    kind = type(error)
    try:
        message = str(error).splitlines()[0] if str(error) else ""
    except Exception:  # noqa: BLE001 - a message that cannot be printed is not shown
        message = ""
    return {"type": f"{kind.__module__}.{kind.__qualname__}", "message": message[:500], "frames": frames[-3:]}
