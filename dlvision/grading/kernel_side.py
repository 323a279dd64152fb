"""The part of the harness that runs inside the student's kernel.

It is untrusted by construction: the student can change anything here, and that changes only the data
that comes back, which the trusted side decodes safely and checks against its own references.
"""
from __future__ import annotations

import traceback

from dlvision.grading import wire

SCENARIO_FILENAME = "<dlvision grader scenario>"


def serve(request: str, namespace: dict) -> None:
    """Carry out one request from the trusted side and publish the reply as a display bundle.

    A request is ``{"kind": "call" | "scenario" | "value" | "timed", "name": str, "source": str | None,
    "args": tuple, "kwargs": dict, "number": int}``; the reply is ``{"ok": True, "payload": ...}`` or
    ``{"ok": False, "error": "..."}``.
    """
    from IPython.display import publish_display_data

    try:
        result = _plain(_carry_out(wire.decode(request, 1 << 30), namespace))
    except BaseException as error:  # noqa: BLE001 - every failure of student code is reported, not raised
        reply = {"ok": False, "error": _describe(error)}
    else:
        try:
            reply = {"ok": True, "payload": wire.encode(result)}
        except Exception:  # noqa: BLE001 - torch.save refuses what is not plain data
            reply = {"ok": False, "error": f"the result is a {type(result).__name__}, which could not be read back: "
                                           "return tensors, numbers, strings, or lists, tuples and dicts of them."}
    publish_display_data({wire.REPLY_MIME: reply})


def _carry_out(request: dict, namespace: dict):
    kind, name = request["kind"], request["name"]
    if kind == "scenario":
        scope = dict(namespace)
        exec(compile(request["source"], SCENARIO_FILENAME, "exec"), scope)
        target = scope[name]
    elif name not in namespace:
        raise NameError(f"name '{name}' is not defined: run the cell that defines it, and check its spelling")
    else:
        target = namespace[name]
    if kind == "value":
        return target
    if kind == "timed":  # the trusted side holds the clock; only the calls happen here
        for _ in range(request["number"]):
            target(*request["args"], **request["kwargs"])
        return None
    return target(*request["args"], **request["kwargs"])


def _plain(value):
    """Detach tensors so that only their data crosses; other values are left to the safe encoder."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value) if type(value) in (list, tuple) else [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _describe(error: BaseException) -> str:
    """The error and the student's own frames, without the harness's or the grader scenario's lines."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if frame.filename not in (__file__, SCENARIO_FILENAME)]
    where = "".join(traceback.format_list(frames))
    message = "".join(traceback.format_exception_only(type(error), error)).strip()
    return f"{where}{message}" if where else message
