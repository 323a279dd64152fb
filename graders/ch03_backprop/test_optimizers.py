"""Hidden tests for sgd_momentum_step and adam_step (Chapter 3, section 6).

The grader sends the same initial parameters and a fixed sequence of 20 gradients to the student's step
function (in the kernel) and to torch.optim.SGD(momentum=...) / torch.optim.Adam (here), in float64, and
compares the parameters after every step (relative error below 1e-7).
"""
import torch

from dlvision.grading import expect_close, expect_implemented_without, points, requires

STEPS = 20
SHAPES = {"W1": (4, 3), "b1": (3,), "W2": (3, 2), "b2": (2,)}
#: Off limits: torch.optim (and torch.nn, autograd), in the step function and in everything it calls.
FORBIDDEN = ["torch.optim", "torch.nn", "torch.autograd", "torch.func", "torch.Tensor.backward"]
#: (An optimizer's .step() needs a torch.optim object, which the path check finds wherever it is created; a name
#: such as "step" is not forbidden on its own, since a state object of the student's own may have one.)
FORBIDDEN_ATTRIBUTES = {"backward"}

SGD_HINT = ("PyTorch's momentum: v = g at the first step, then v = momentum * v + g, and p = p - lr * v with the "
            "current lr. Not v = momentum * v - lr * g; p = p + v (TensorFlow's form, which differs once lr "
            "changes), and no (1 - momentum) factor on g.")
ADAM_HINT = ("PyTorch's Adam: m = b1 * m + (1 - b1) * g, v = b2 * v + (1 - b2) * g^2, m_hat = m / (1 - b1^t), "
             "v_hat = v / (1 - b2^t) with t = 1 at the first step, p = p - lr * m_hat / (sqrt(v_hat) + eps), "
             "eps added after the square root; one step count for all parameters of the call.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def run_steps(name, params, gradients, hyper, refill=False):
    """Calls the student's step function once per gradient dict, with one state dict; the params after each step.

    hyper: a list of keyword dicts, one per step (so that lr may change from one step to the next).
    refill: pass the same gradient tensors every step, refilled in place (as a training loop's .grad buffers).
    """
    step = globals()[name]
    params = {k: v.clone() for k, v in params.items()}
    state, history = {}, []
    buffers = {k: v.clone() for k, v in gradients[0].items()}
    for grads, kwargs in zip(gradients, hyper):
        if refill:
            for k, v in grads.items():
                buffers[k].copy_(v)
        step(params, buffers if refill else {k: v.clone() for k, v in grads.items()}, state, **kwargs)
        history.append({k: v.clone() for k, v in params.items()})
    return history


# --- helpers on the trusted side -------------------------------------------------------------------------------

def initial_and_gradients(seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    params = {k: torch.randn(shape, generator=g, dtype=torch.float64) for k, shape in SHAPES.items()}
    gradients = [{k: torch.randn(shape, generator=g, dtype=torch.float64) * scale for k, shape in SHAPES.items()}
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


def compare(student, name, make_optimizer, seed, hyper, hint, scale=1.0, refill=False):
    params, gradients = initial_and_gradients(seed, scale)
    got = student.run(run_steps, name, params, gradients, hyper, refill)
    expected = torch_history(make_optimizer, params, gradients, hyper)
    settings = ", ".join(f"{k}={v}" for k, v in hyper[0].items()) or "with its defaults"
    settings += ", gradients refilled in place every step" if refill else ""
    for t, (mine, theirs) in enumerate(zip(got, expected), start=1):
        assert isinstance(mine, dict) and set(mine) == set(theirs), (
            f"after step {t}, params should still have the keys {sorted(theirs)}, got "
            f"{sorted(mine) if isinstance(mine, dict) else type(mine).__name__}.")
        for k in theirs:
            lr_note = f" (lr at this step: {hyper[t - 1]['lr']})" if len({h.get('lr') for h in hyper}) > 1 else ""
            expect_close(mine[k], theirs[k], name=f"{name}({settings}): params['{k}'] after step {t}{lr_note}",
                         hint=hint)


def sgd(params, lr, momentum):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, foreach=False)


def adam(params, lr, betas, eps):
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, foreach=False)


def check_implemented_by_hand(student, name, hyper):
    """Static reach, and the torch functions that run during one step."""
    params, gradients = initial_and_gradients(9)
    try:
        expect_implemented_without(student, name, FORBIDDEN, attributes=FORBIDDEN_ATTRIBUTES,
                                   calling=((params, gradients[0], {}), hyper))
    except AssertionError as error:
        raise AssertionError(f"{error} Write the update rule yourself with tensor operations, without "
                             "torch.optim.") from None


# --- SGD with momentum -----------------------------------------------------------------------------------------

@points(2)
def test_sgd_momentum_matches_torch_optim_for_20_steps(student):
    """sgd_momentum_step equals torch.optim.SGD(momentum=...) after each of 20 steps (momentum 0.9, 0.5, 0 and the
    default; gradients passed fresh or refilled in place)"""
    for seed, (lr, momentum) in enumerate(((0.1, 0.9), (0.05, 0.5), (0.2, 0.0)), start=1):
        compare(student, "sgd_momentum_step", sgd, seed, [{"lr": lr, "momentum": momentum}] * STEPS, SGD_HINT)
    # The signature's default momentum, 0.9.
    compare(student, "sgd_momentum_step", lambda params, lr: sgd(params, lr, 0.9), 7, [{"lr": 0.1}] * STEPS,
            "Without a momentum argument, use the signature's default, momentum=0.9. " + SGD_HINT)
    # The same gradient tensors every step, refilled in place as a training loop refills .grad: the state keeps
    # a copy of the first gradient, not the caller's tensor.
    compare(student, "sgd_momentum_step", sgd, 8, [{"lr": 0.1, "momentum": 0.9}] * STEPS,
            "Store a copy of the first gradient in the state (grad.clone()), not the caller's tensor: callers "
            "refill their gradient tensors in place for the next step (PyTorch's .grad), which would change your "
            "velocity behind your back. " + SGD_HINT, refill=True)


@points(1)
def test_sgd_momentum_follows_a_changing_learning_rate_like_pytorch(student):
    """with a learning rate that changes every step, sgd_momentum_step still equals torch.optim.SGD"""
    lrs = [0.2 * 0.8 ** t for t in range(STEPS)]
    compare(student, "sgd_momentum_step", sgd, 4, [{"lr": lr, "momentum": 0.9} for lr in lrs], SGD_HINT)


@points(1)
@requires("test_sgd_momentum_matches_torch_optim_for_20_steps")
def test_sgd_momentum_is_implemented_by_hand(student):
    """sgd_momentum_step does not use torch.optim"""
    check_implemented_by_hand(student, "sgd_momentum_step", {"lr": 0.1, "momentum": 0.9})


# --- Adam ------------------------------------------------------------------------------------------------------

@points(2)
def test_adam_matches_torch_optim_for_20_steps(student):
    """adam_step equals torch.optim.Adam (default betas and eps, then all defaults) after each of 20 steps"""
    compare(student, "adam_step", adam, 5, [{"lr": 0.05, "betas": (0.9, 0.999), "eps": 1e-8}] * STEPS, ADAM_HINT)
    # The signature's defaults (lr=1e-3, betas=(0.9, 0.999), eps=1e-8), on gradients of size 1e-8, where eps counts.
    compare(student, "adam_step", lambda params: torch.optim.Adam(params, foreach=False), 10, [{}] * STEPS,
            "Without lr, betas or eps arguments, use the signature's defaults: lr=1e-3, betas=(0.9, 0.999), "
            "eps=1e-8 (on these gradients of size 1e-8, eps matters). " + ADAM_HINT, scale=1e-8)


@points(1)
def test_adam_with_other_betas_and_a_large_eps(student):
    """adam_step equals torch.optim.Adam with betas (0.8, 0.99) and eps 1e-2 on gradients of size 1e-2"""
    compare(student, "adam_step", adam, 6, [{"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-2}] * STEPS, ADAM_HINT,
            scale=1e-2)


@points(1)
@requires("test_adam_matches_torch_optim_for_20_steps")
def test_adam_is_implemented_by_hand(student):
    """adam_step does not use torch.optim"""
    check_implemented_by_hand(student, "adam_step", {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8})
