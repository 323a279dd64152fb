"""Comparisons that fail with a message that teaches.

Used by the notebooks' visible checks (inside the student's kernel) and by the hidden graders (on the
trusted side), so that a student meets the same wording in both places.
"""
from __future__ import annotations

import torch

#: Default tolerances by dtype, from ../shared/ASSIGNMENTS.md: float64 below 1e-7, float32 below 1e-5.
DEFAULT_TOLERANCES = {
    torch.float64: (1e-7, 1e-10),
    torch.float32: (1e-5, 1e-6),
    torch.float16: (1e-3, 1e-4),
    torch.bfloat16: (1e-2, 1e-3),
}


def expect_close(got, expected: torch.Tensor, *, rtol: float | None = None, atol: float | None = None,
                 name: str = "the result", hint: str = "") -> None:
    """Assert that tensor ``got`` equals ``expected`` in type, shape, dtype, device and value.

    Tolerances default to ``DEFAULT_TOLERANCES[expected.dtype]``. Non-finite values must match exactly
    (``nan`` where ``nan`` is expected, ``inf`` of the same sign). Raises ``AssertionError`` whose message
    says what was expected, what came back, where the largest error is, and ``hint``.
    """
    def fail(what: str) -> None:
        raise AssertionError(f"{name}: {what}" + (f"\nHint: {hint}" if hint else ""))

    if not isinstance(got, torch.Tensor):
        fail(f"expected a torch.Tensor, got {type(got).__name__}.")
    if got.shape != expected.shape:
        fail(f"expected shape {tuple(expected.shape)}, got {tuple(got.shape)}.")
    if got.dtype != expected.dtype:
        fail(f"expected dtype {expected.dtype}, got {got.dtype}.")
    if got.device != expected.device:
        fail(f"expected a tensor on {expected.device}, got one on {got.device}.")
    default_rtol, default_atol = DEFAULT_TOLERANCES.get(expected.dtype, (0.0, 0.0))
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    got, expected = got.detach(), expected.detach()
    if not expected.is_floating_point():
        mismatch = got != expected
        if mismatch.any():
            where = _index(mismatch.nonzero()[0])
            fail(f"{int(mismatch.sum())} of {expected.numel()} entries differ; "
                 f"at {where} expected {expected[where].item()}, got {got[where].item()}.")
        return
    nonfinite = ~torch.isfinite(got) & torch.isfinite(expected)
    if nonfinite.any():
        where = _index(nonfinite.nonzero()[0])
        fail(f"{int(nonfinite.sum())} of {expected.numel()} entries are inf or nan where finite values "
             f"were expected; at {where} expected {expected[where].item():.6g}, got {got[where].item()}.")
    error = (got - expected).abs()
    allowed = atol + rtol * expected.abs()
    both_nonfinite = ~torch.isfinite(expected) & ((got == expected) | (got.isnan() & expected.isnan()))
    bad = (error > allowed) & ~both_nonfinite | (~torch.isfinite(expected) & ~both_nonfinite)
    if bad.any():
        excess = torch.where(bad, torch.nan_to_num(error / allowed, nan=float("inf")), torch.zeros_like(error))
        where = _index((excess == excess.max()).nonzero()[0])
        fail(f"{int(bad.sum())} of {expected.numel()} entries are off (rtol={rtol:g}, atol={atol:g}); "
             f"the largest error is at {where}: expected {expected[where].item():.10g}, "
             f"got {got[where].item():.10g}.")


def _index(index: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in index)
