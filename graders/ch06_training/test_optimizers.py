"""Hidden tests for sgd_l2_step and adamw_step (Chapter 6, section 4).

The grader sends the same initial parameters and a fixed sequence of 20 gradients to the student's step function (in
the kernel) and to torch.optim.SGD(weight_decay=...) / torch.optim.AdamW (here), in float64, and compares the
parameters after every step (relative error below 1e-7), also with a learning rate that changes at every step.
"""
import math

import torch

from dlvision.grading import expect_close, expect_implemented_without, points, requires

STEPS = 20
SHAPES = {"W1": (4, 3), "b1": (3,), "W2": (3, 2), "b2": (2,)}
FORBIDDEN = ["torch.optim", "torch.nn", "torch.autograd", "torch.func", "torch.Tensor.backward"]

SGD_HINT = ("PyTorch's SGD with weight decay: g = grad + weight_decay * p (the L2 term goes INTO the gradient, before "
            "momentum); v = g at the first step, then v = momentum * v + g; p = p - lr * v with the current lr.")
ADAMW_HINT = ("PyTorch's AdamW: first p = p * (1 - lr * weight_decay) with the current lr (the decay is NOT added to "
              "the gradient), then Adam on the plain gradient: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, "
              "p = p - lr * m_hat / (sqrt(v_hat) + eps), m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t), one step "
              "count t for all parameters, t = 1 at the first step.")


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def run_steps(name, params, gradients, hyper):
    """Calls the student's step function once per gradient dict, with one state dict; the params after each step.

    hyper: a list of keyword dicts, one per step (so that lr may change from one step to the next).
    """
    step = globals()[name]
    params = {k: v.clone() for k, v in params.items()}
    state, history = {}, []
    for grads, kwargs in zip(gradients, hyper):
        step(params, {k: v.clone() for k, v in grads.items()}, state, **kwargs)
        history.append({k: v.clone() for k, v in params.items()})
    return history


# --- helpers on the trusted side -------------------------------------------------------------------------------

def initial_and_gradients(seed):
    g = torch.Generator().manual_seed(seed)
    params = {k: torch.randn(shape, generator=g, dtype=torch.float64) for k, shape in SHAPES.items()}
    gradients = [{k: torch.randn(shape, generator=g, dtype=torch.float64) for k, shape in SHAPES.items()}
                 for _ in range(STEPS)]
    return params, gradients


def torch_history(make_optimizer, params, gradients, hyper):
    """The same steps with torch.optim; hyper[t] sets the param group's options before step t."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    optimizer = make_optimizer(list(leaves.values()), **hyper[0])
    history = []
    for grads, kwargs in zip(gradients, hyper):
        optimizer.param_groups[0].update(kwargs)
        for k, leaf in leaves.items():
            leaf.grad = grads[k].clone()
        optimizer.step()
        history.append({k: leaf.detach().clone() for k, leaf in leaves.items()})
    return history


def compare(student, name, make_optimizer, seed, hyper, hint, passed=None, grad_scale=1.0):
    """The student's steps called with the keywords `passed` (default: all of `hyper`; fewer to test the defaults
    of the signature) against torch.optim with `hyper`; gradients scaled by grad_scale."""
    params, gradients = initial_and_gradients(seed)
    gradients = [{k: v * grad_scale for k, v in grads.items()} for grads in gradients]
    got = student.run(run_steps, name, params, gradients, hyper if passed is None else passed)
    expected = torch_history(make_optimizer, params, gradients, hyper)
    settings = ", ".join(f"{k}={v}" for k, v in hyper[0].items() if k != "lr")
    if passed is not None:
        settings = (f"called with only {sorted(passed[0]) or 'the positional arguments'}, so the defaults of the "
                    f"signature apply: {settings}")
    if grad_scale != 1.0:
        settings += f", gradients of order {grad_scale:g}"
    changing = len({h["lr"] for h in hyper}) > 1
    for t, (mine, theirs) in enumerate(zip(got, expected), start=1):
        assert isinstance(mine, dict) and set(mine) == set(theirs), (
            f"after step {t}, params should still have the keys {sorted(theirs)}, got "
            f"{sorted(mine) if isinstance(mine, dict) else type(mine).__name__}.")
        lr = f"lr={hyper[t - 1]['lr']:.4g}" + (" at this step, changing every step" if changing else "")
        for k in theirs:
            expect_close(mine[k], theirs[k], name=f"{name}({lr}, {settings}): params['{k}'] after step {t}",
                         hint=hint)


def sgd(params, lr, momentum, weight_decay):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=False)


def adamw(params, lr, betas, eps, weight_decay):
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)


def changing_lrs(base):
    """A warmup-then-cosine sequence of learning rates, written out here."""
    return [base * (t + 1) / 5 if t < 5 else base * 0.5 * (1 + math.cos(math.pi * (t - 5) / (STEPS - 5)))
            for t in range(STEPS)]


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_sgd_l2_matches_torch_sgd_with_weight_decay_for_20_steps(student):
    """sgd_l2_step equals torch.optim.SGD(momentum, weight_decay) after each of 20 steps (momentum 0.9 or 0, and the
    signature's defaults momentum=0.9, weight_decay=5e-4)"""
    for seed, (lr, momentum, weight_decay) in enumerate(((0.1, 0.9, 0.05), (0.05, 0.0, 0.2), (0.2, 0.9, 0.0)),
                                                        start=1):
        compare(student, "sgd_l2_step", sgd, seed,
                [{"lr": lr, "momentum": momentum, "weight_decay": weight_decay}] * STEPS, SGD_HINT)
    compare(student, "sgd_l2_step", sgd, 10, [{"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}] * STEPS,
            "The signature's defaults are momentum=0.9, weight_decay=5e-4. " + SGD_HINT, passed=[{"lr": 0.1}] * STEPS)


@points(1)
def test_sgd_l2_follows_a_changing_learning_rate_like_pytorch(student):
    """with a learning rate that changes every step, sgd_l2_step still equals torch.optim.SGD"""
    compare(student, "sgd_l2_step", sgd, 4,
            [{"lr": lr, "momentum": 0.9, "weight_decay": 0.1} for lr in changing_lrs(0.2)], SGD_HINT)


@points(2)
def test_adamw_matches_torch_adamw_for_20_steps(student):
    """adamw_step equals torch.optim.AdamW (betas (0.9, 0.999), eps 1e-8; weight decay 0.01, 0.2 and 0; and every
    argument left to the signature's defaults, torch's) after each of 20 steps"""
    for seed, (lr, weight_decay) in enumerate(((0.05, 0.01), (0.1, 0.2), (0.05, 0.0)), start=5):
        compare(student, "adamw_step", adamw, seed,
                [{"lr": lr, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": weight_decay}] * STEPS, ADAMW_HINT)
    # The defaults, torch's: gradients of order 1e-8 make eps count as much as sqrt(v_hat).
    compare(student, "adamw_step", adamw, 11, [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8,
                                                "weight_decay": 1e-2}] * STEPS,
            "The signature's defaults are torch.optim.AdamW's: lr=1e-3, betas=(0.9, 0.999), eps=1e-8, "
            "weight_decay=1e-2. " + ADAMW_HINT, passed=[{}] * STEPS, grad_scale=1e-8)


@points(1)
def test_adamw_with_other_betas_and_a_changing_learning_rate(student):
    """adamw_step equals torch.optim.AdamW with betas (0.8, 0.99), eps 1e-2, weight decay 0.5 and a changing lr"""
    compare(student, "adamw_step", adamw, 8,
            [{"lr": lr, "betas": (0.8, 0.99), "eps": 1e-2, "weight_decay": 0.5} for lr in changing_lrs(0.1)],
            ADAMW_HINT)


@points(1)
@requires("test_sgd_l2_matches_torch_sgd_with_weight_decay_for_20_steps", "test_adamw_matches_torch_adamw_for_20_steps")
def test_optimizers_are_implemented_by_hand(student):
    """sgd_l2_step and adamw_step do not use torch.optim"""
    params, gradients = initial_and_gradients(9)
    for name, hyper in (("sgd_l2_step", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
                        ("adamw_step", {"lr": 0.01, "weight_decay": 0.1})):
        try:
            expect_implemented_without(student, name, FORBIDDEN, attributes={"backward"},
                                       calling=((params, gradients[0], {}), hyper))
        except AssertionError as error:
            raise AssertionError(f"{error} Write the update rule yourself with tensor operations, without "
                                 "torch.optim.") from None
