"""Hidden tests for cosine_lr (Chapter 6, section 5).

Every value is compared with the stated formula, evaluated here in float64 for every step from 0 to total_steps
(relative error below 1e-9: it is a formula, only rounding separates two correct answers):
warmup base_lr * (step + 1) / warmup_steps for step < warmup_steps, then base_lr * (1 + cos(pi * progress)) / 2 with
progress = (step - warmup_steps) / (total_steps - warmup_steps).
"""
import math

import torch

from dlvision.grading import expect_close, points

HINT = ("Warmup: base_lr * (step + 1) / warmup_steps while step < warmup_steps (base_lr / warmup_steps at step 0); "
        "then base_lr * (1 + cos(pi * progress)) / 2, progress = (step - warmup_steps) / (total_steps - "
        "warmup_steps), which is base_lr at step warmup_steps and 0 at step total_steps.")


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def schedule(total_steps, base_lr, warmup_steps):
    """cosine_lr for every step 0..total_steps, as returned."""
    return [cosine_lr(step, total_steps, base_lr, warmup_steps) for step in range(total_steps + 1)]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def expected_schedule(total_steps, base_lr, warmup_steps):
    values = []
    for step in range(total_steps + 1):
        if step < warmup_steps:
            values.append(base_lr * (step + 1) / warmup_steps)
        else:
            progress = (step - warmup_steps) / (total_steps - warmup_steps)
            values.append(base_lr * (1 + math.cos(math.pi * progress)) / 2)
    return values


def check(student, total_steps, base_lr, warmup_steps):
    got = student.run(schedule, total_steps, base_lr, warmup_steps)
    label = f"cosine_lr(step, total_steps={total_steps}, base_lr={base_lr}, warmup_steps={warmup_steps})"
    assert isinstance(got, list) and len(got) == total_steps + 1, f"{label} did not return one value per step."
    bad = [type(v).__name__ for v in got if not isinstance(v, float)]
    assert not bad, f"{label} should return Python floats, got {bad[0]} (use math.cos, not torch.cos, or float(...))."
    expected = torch.tensor(expected_schedule(total_steps, base_lr, warmup_steps), dtype=torch.float64)
    expect_close(torch.tensor(got, dtype=torch.float64), expected, rtol=1e-9, atol=1e-12 * base_lr,
                 name=f"{label} for step = 0, 1, ..., {total_steps} (entry [s] is step s)", hint=HINT)


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_cosine_lr_with_warmup_matches_the_formula_at_every_step(student):
    """cosine_lr with 10 (and 3) warmup steps follows the stated warmup and cosine at every step 0..total_steps"""
    check(student, 100, 0.1, 10)
    check(student, 37, 3e-4, 3)


@points(1)
def test_cosine_lr_without_warmup_starts_at_base_lr_and_ends_at_0(student):
    """with warmup_steps = 0, cosine_lr is base_lr at step 0, base_lr / 2 halfway and 0 at step total_steps"""
    check(student, 50, 0.5, 0)
    check(student, 1, 2.0, 0)


@points(1)
def test_cosine_lr_at_the_edges_of_the_warmup(student):
    """one warmup step, and all steps but one of warmup, follow the formula too"""
    check(student, 20, 0.1, 1)
    check(student, 20, 0.1, 19)
