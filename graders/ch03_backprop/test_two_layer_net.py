"""Hidden tests for TwoLayerNet (Chapter 3, section 4).

References: the initial parameters drawn here exactly as the docstring states them (std * torch.randn with a
generator seeded alike, W1 then W2, zero biases); the forward pass and the loss recomputed here in float64 from
the parameters the grader sets (torch.nn.functional.cross_entropy plus 0.5 * reg * (|W1|^2 + |W2|^2)), and
autograd through them. The overfitting run's data come from fresh randomness and its verdict is computed here
from the trained parameters; its bound is explained in THRESHOLDS.md.
"""
import math

import torch

from dlvision.grading import (expect_close, expect_implemented_without, expect_keeps_device, fresh_generator, points,
                              requires)

KEYS = ("W1", "b1", "W2", "b2")
#: Off limits (the notebook's introduction): autograd in any form, torch.nn (torch.nn.functional included),
#: in TwoLayerNet and in everything it calls (your layers and loss).
FORBIDDEN = ["torch.nn", "torch.autograd", "torch.func", "torch.Tensor.backward", "torch.Tensor.requires_grad_"]
FORBIDDEN_ATTRIBUTES = {"backward", "requires_grad", "requires_grad_", "retain_grad"}
LAYERS_HINT = ("If the tests of your layers above fail, fix those first: TwoLayerNet is built from them. "
               "Otherwise: backward goes softmax_cross_entropy -> linear_backward (W2) -> relu_backward -> "
               "linear_backward (W1), and the L2 term adds reg * W to the weights' gradients (not the biases').")
INIT_HINT = ("Draw W1 = std * torch.randn(input_dim, hidden_dim, generator=generator) first, then "
             "W2 = std * torch.randn(hidden_dim, num_classes, generator=generator), both float32; the biases are "
             "torch.zeros(...).")

#: The grader's overfitting run: 50 random images with random labels (fresh each run), hidden 100, std 0.1,
#: plain gradient descent (see THRESHOLDS.md).
OVERFIT = {"n": 50, "hidden": 100, "std": 0.1, "lr": 0.5, "steps": 200, "init_seed": 0}


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def initial_params(dims, std, seeds):
    """The params of new nets, one per generator seed."""
    import torch

    return [dict(TwoLayerNet(*dims, std=std, generator=torch.Generator().manual_seed(seed)).params) for seed in seeds]


def scores_and_loss(dims, params, X, y, reg):
    """scores(X) and loss(X, y, reg) of a net whose params are replaced by the grader's."""
    net = TwoLayerNet(*dims)
    net.params = {k: v.clone() for k, v in params.items()}
    loss, grads = net.loss(X, y, reg=reg)
    return {"scores": net.scores(X), "loss": loss, "grads": dict(grads)}


def TwoLayerNet_on_a_device(X, y, device="cpu"):
    """A new TwoLayerNet(D, 7, C) used as the notebook does, for expect_keeps_device (which moves X and y): its
    parameters are created on the CPU and moved with .to(device) when the device under test is not the CPU."""
    import torch

    net = TwoLayerNet(X.shape[1], 7, 3, std=0.5, generator=torch.Generator().manual_seed(0))
    if device != "cpu":
        net.params = {k: v.to(device) for k, v in net.params.items()}
    loss, grads = net.loss(X, y, reg=0.1)
    return {"scores": net.scores(X), "loss": loss, "grads": dict(grads)}


def initial_loss(dims, seed, X, y):
    """The loss of a new net built with the default std."""
    import torch

    net = TwoLayerNet(*dims, generator=torch.Generator().manual_seed(seed))
    return net.loss(X, y)[0]


def overfit(X, y, hidden, std, lr, steps, seed):
    """The grader's own loop: plain gradient descent on the student's loss; returns the trained parameters."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is fastest, and steady on a busy machine
    try:
        net = TwoLayerNet(X.shape[1], hidden, int(y.max()) + 1, std=std,
                          generator=torch.Generator().manual_seed(seed))
        losses = []
        for _ in range(steps):
            loss, grads = net.loss(X, y)
            net.params = {k: v - lr * grads[k] for k, v in net.params.items()}
            losses.append(float(loss))
        return {"params": dict(net.params), "losses": losses}
    finally:
        torch.set_num_threads(threads)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def random_params(dims, seed, scale=0.7):
    g = torch.Generator().manual_seed(seed)
    d, h, c = dims
    shapes = {"W1": (d, h), "b1": (h,), "W2": (h, c), "b2": (c,)}
    return {k: torch.randn(shape, generator=g, dtype=torch.float64) * scale for k, shape in shapes.items()}


def reference(params, X, y, reg):
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    scores = torch.relu(X @ leaves["W1"] + leaves["b1"]) @ leaves["W2"] + leaves["b2"]
    loss = torch.nn.functional.cross_entropy(scores, y) + 0.5 * reg * (
        (leaves["W1"] ** 2).sum() + (leaves["W2"] ** 2).sum())
    loss.backward()
    return scores.detach(), loss.detach(), {k: v.grad for k, v in leaves.items()}


def random_images(n, g):
    """n random "images" of 64 pixels in [0, 1] (the size of scikit-learn's 8x8 digits) with random labels 0..9.

    Random labels are the hardest training set there is to fit: the network can only memorise them, which is
    exactly what the overfitting check asks of it.
    """
    return torch.rand(n, 64, generator=g), torch.randint(0, 10, (n,), generator=g)


def reference_init(dims, std, seed):
    """The initial params exactly as the docstring states them."""
    d, h, c = dims
    g = torch.Generator().manual_seed(seed)
    first = torch.randn(d, h, generator=g) * std
    second = torch.randn(h, c, generator=g) * std
    return {"W1": first, "b1": torch.zeros(h), "W2": second, "b2": torch.zeros(c)}


def predictions(params, X):
    """argmax of relu(X @ W1 + b1) @ W2 + b2, computed here in float64 from the student's trained params."""
    p = {k: params[k].double() for k in KEYS}
    return (torch.relu(X.double() @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]).argmax(dim=1)


def check_params_dict(params, dims):
    d, h, c = dims
    expected = {"W1": (d, h), "b1": (h,), "W2": (h, c), "b2": (c,)}
    assert isinstance(params, dict) and set(params) == set(KEYS), (
        f"TwoLayerNet.params should be a dict with exactly the keys {list(KEYS)}, got "
        + (f"{sorted(params)}." if isinstance(params, dict) else f"a {type(params).__name__}."))
    found = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for k, v in params.items()}
    assert found == expected, (f"TwoLayerNet({d}, {h}, {c}).params should have shapes {expected}, got {found}. "
                               "W1 is (input_dim, hidden_dim): x @ W1, no transpose.")


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_initial_params_are_the_stated_draws(student):
    """params holds W1, b1, W2, b2: std * torch.randn from the generator (W1, then W2), float32, zero biases"""
    dims, std, seeds = (300, 200, 10), 0.05, (0, 7)
    for seed, params in zip(seeds, student.run(initial_params, list(dims), std, list(seeds))):
        check_params_dict(params, dims)
        expected = reference_init(dims, std, seed)
        for key in KEYS:
            expect_close(params[key], expected[key],
                         name=f"params['{key}'] of TwoLayerNet{dims} with std={std} and a generator seeded {seed}",
                         hint=INIT_HINT)


@points(1)
def test_scores_is_linear_relu_linear(student):
    """scores(X) = relu(X @ W1 + b1) @ W2 + b2 for the params the net holds (float64, N = 1 included)"""
    for n, dims in ((1, (3, 4, 2)), (9, (5, 7, 3)), (20, (64, 30, 10))):
        params = random_params(dims, n)
        g = torch.Generator().manual_seed(100 + n)
        X = torch.randn(n, dims[0], generator=g, dtype=torch.float64)
        y = torch.randint(0, dims[2], (n,), generator=g)
        got = student.run(scores_and_loss, list(dims), params, X, y, 0.0)
        expected, _, _ = reference(params, X, y, 0.0)
        expect_close(got["scores"], expected, name=f"scores(X) for X of shape {tuple(X.shape)}",
                     hint="relu(X @ W1 + b1) @ W2 + b2, with the entries of self.params as they are now.")


@points(2)
def test_loss_and_gradients_match_autograd(student):
    """loss(X, y, reg) and every gradient match autograd in float64, with and without reg, N = 1 included"""
    for n, dims, reg in ((1, (3, 4, 2), 0.0), (1, (4, 3, 5), 0.3), (8, (5, 7, 3), 0.0), (13, (6, 9, 4), 0.25)):
        params = random_params(dims, 10 + n)
        g = torch.Generator().manual_seed(200 + n)
        X = torch.randn(n, dims[0], generator=g, dtype=torch.float64)
        y = torch.randint(0, dims[2], (n,), generator=g)
        got = student.run(scores_and_loss, list(dims), params, X, y, reg)
        _, loss, grads = reference(params, X, y, reg)
        where = f"for X of shape {tuple(X.shape)} and reg = {reg}"
        expect_close(got["loss"], loss, name=f"the loss {where}",
                     hint="The mean cross-entropy plus 0.5 * reg * (sum(W1 ** 2) + sum(W2 ** 2)).")
        assert isinstance(got["grads"], dict) and set(got["grads"]) == set(KEYS), (
            f"grads should be a dict with the keys {list(KEYS)}, got "
            + (f"{sorted(got['grads'])}." if isinstance(got["grads"], dict) else f"a {type(got['grads']).__name__}."))
        for key in KEYS:
            expect_close(got["grads"][key], grads[key], name=f"grads['{key}'] {where}", hint=LAYERS_HINT)
    # The docstring's "float32 on the CPU" at construction, and params that can be replaced by tensors on another
    # device, on a GPU or the stand-in: it can only fail this test, never earn a point of its own.
    g = torch.Generator().manual_seed(300)
    X, y = torch.randn(6, 5, generator=g), torch.randint(0, 3, (6,), generator=g)
    expect_keeps_device(student, TwoLayerNet_on_a_device, X, y, hint=(
        "Create the parameters on the CPU (no device=, no .to(device) in __init__): the caller moves them, as the "
        "notebook's train() does. scores and loss must then work wherever the parameters and X are: every new "
        "tensor they make (in your layers and loss too) needs device=X.device, or torch.zeros_like(...). "
        + LAYERS_HINT))


@points(1)
@requires("test_loss_and_gradients_match_autograd")
def test_initial_loss_with_the_default_std_is_about_log_10(student):
    """with the default std = 1e-2 the initial loss on 100 inputs of 64 pixels is the stated net's, about log(10)"""
    dims, seed = (64, 100, 10), 3
    X, y = random_images(100, torch.Generator().manual_seed(1))
    loss = student.run(initial_loss, list(dims), seed, X, y)
    params = {k: v.double() for k, v in reference_init(dims, 1e-2, seed).items()}
    _, expected, _ = reference(params, X.double(), y, 0.0)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0, (
        "loss(X, y) should return a 0-d tensor first, got "
        + (f"a tensor of shape {tuple(loss.shape)}." if isinstance(loss, torch.Tensor)
           else f"a {type(loss).__name__}."))
    expect_close(loss.double(), expected, rtol=1e-5, atol=1e-6,
                 name=f"the initial loss of TwoLayerNet{dims} (default std) on 100 random inputs",
                 hint=f"With small weights every class gets probability about 1/10, so the loss starts near "
                      f"log(10) = {math.log(10):.4f}. The default std is 1e-2, and the biases start at zero.")


@points(1)
def test_overfits_50_samples(student):
    """trained by the grader's plain gradient descent, the net fits 50 random samples perfectly (100% accuracy)"""
    X, y = random_images(OVERFIT["n"], fresh_generator())
    got = student.run(overfit, X, y, OVERFIT["hidden"], OVERFIT["std"], OVERFIT["lr"], OVERFIT["steps"],
                      OVERFIT["init_seed"], timeout=60)
    params, losses = got["params"], got["losses"]
    check_params_dict(params, (64, OVERFIT["hidden"], 10))
    accuracy = (predictions(params, X) == y).double().mean().item()
    trend = ""
    if isinstance(losses, list) and len(losses) == OVERFIT["steps"] and all(isinstance(v, float) for v in losses):
        trend = f" The loss went from {losses[0]:.3g} to {losses[-1]:.3g}" + (
            ", upwards: a gradient with the wrong sign?" if losses[-1] > losses[0] else ".")
    assert accuracy == 1.0, (
        f"after {OVERFIT['steps']} steps of gradient descent (lr {OVERFIT['lr']}) on {OVERFIT['n']} samples, the "
        f"net classifies {accuracy:.0%} of them correctly; a correct network memorises all of them.{trend} "
        + LAYERS_HINT)


@points(1)
@requires("test_loss_and_gradients_match_autograd")
def test_two_layer_net_is_implemented_by_hand(student):
    """TwoLayerNet uses no autograd and nothing from torch.nn, nor does anything it calls"""
    try:
        expect_implemented_without(student, "TwoLayerNet", FORBIDDEN, attributes=FORBIDDEN_ATTRIBUTES)
    except AssertionError as error:
        raise AssertionError(f"{error} Chain your layers' backward passes instead of autograd.") from None
