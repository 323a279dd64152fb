"""Hidden tests for TwoLayerNet (Chapter 3, section 4).

References: the forward pass and the loss recomputed here in float64 from the parameters the grader sets
(torch.nn.functional.cross_entropy plus 0.5 * reg * (|W1|^2 + |W2|^2)), and autograd through them. The
initial-loss, initialisation and overfitting bounds are explained in THRESHOLDS.md.
"""
import ast
import math

import torch

from dlvision.grading import StudentError, expect_close, expect_implemented_without, points

KEYS = ("W1", "b1", "W2", "b2")
FORBIDDEN_DOTTED = ["torch.nn", "F.", "torch.autograd", "torch.func", "functorch"]
FORBIDDEN_ATTRIBUTES = {"backward", "grad", "requires_grad_"}
LAYERS_HINT = ("If the tests of your layers above fail, fix those first: TwoLayerNet is built from them. "
               "Otherwise: backward goes softmax_cross_entropy -> linear_backward (W2) -> relu_backward -> "
               "linear_backward (W1), and the L2 term adds reg * W to the weights' gradients (not the biases').")

#: The grader's overfitting run: 50 random images with random labels, hidden 100, std 0.1, plain gradient descent
#: (see THRESHOLDS.md).
OVERFIT = {"n": 50, "hidden": 100, "std": 0.1, "lr": 0.5, "steps": 200, "seed": 0}
#: |initial loss - log C| allowed with the default std = 1e-2 (see THRESHOLDS.md).
INITIAL_LOSS_TOLERANCE = 0.05


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def initial_params(input_dim, hidden_dim, num_classes, std, seeds):
    """The params of fresh nets, one per generator seed (None: no generator)."""
    import torch

    nets = []
    for seed in seeds:
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        nets.append(dict(TwoLayerNet(input_dim, hidden_dim, num_classes, std=std, generator=generator).params))
    return nets


def scores_and_loss(dims, params, X, y, reg):
    """scores(X) and loss(X, y, reg) of a net whose params are replaced by the grader's."""
    net = TwoLayerNet(*dims)
    net.params = {k: v.clone() for k, v in params.items()}
    loss, grads = net.loss(X, y, reg=reg)
    return {"scores": net.scores(X), "loss": loss, "grads": dict(grads)}


def initial_loss(dims, seed, X, y):
    import torch

    net = TwoLayerNet(*dims, generator=torch.Generator().manual_seed(seed))
    return net.loss(X, y)[0]


def overfit(X, y, hidden, std, lr, steps, seed):
    """The grader's own loop: plain gradient descent on the student's loss; returns the training predictions."""
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
        return {"predictions": net.scores(X).argmax(dim=1), "losses": losses}
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


def random_images(n, seed):
    """n random "images" of 64 pixels in [0, 1] (the size of scikit-learn's 8x8 digits) with random labels 0..9.

    Random labels are the hardest training set there is to fit: the network can only memorise them, which is
    exactly what the overfitting check asks of it.
    """
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 64, generator=g), torch.randint(0, 10, (n,), generator=g)


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
def test_params_have_the_stated_shapes_and_initialisation(student):
    """params holds W1, b1, W2, b2 of the stated shapes; float32; W ~ std * randn from the generator, b = 0"""
    dims, std = (300, 200, 10), 0.05
    first, again, other = student.run(initial_params, *dims, std, [0, 0, 1])
    check_params_dict(first, dims)
    for key in KEYS:
        assert first[key].dtype == torch.float32, f"params['{key}'] should be float32, got {first[key].dtype}."
    for key in ("b1", "b2"):
        assert torch.equal(first[key], torch.zeros_like(first[key])), f"params['{key}'] should start at zero."
    w1_std = first["W1"].double().std().item()
    assert abs(w1_std / std - 1) < 0.05 and abs(first["W1"].double().mean().item()) < 0.05 * std, (
        f"W1 should be std * torch.randn(...) with std = {std}: mean 0 and standard deviation {std}; its entries "
        f"have mean {first['W1'].double().mean().item():.3g} and standard deviation {w1_std:.3g}.")
    w2_std = first["W2"].double().std().item()
    assert abs(w2_std / std - 1) < 0.1, (f"W2 should be std * torch.randn(...) with std = {std}; its entries have "
                                         f"standard deviation {w2_std:.3g}.")
    for key in KEYS:
        assert torch.equal(first[key], again[key]), (
            f"two nets built with generators seeded alike have different params['{key}']: draw the weights with "
            "torch.randn(..., generator=generator).")
    assert not torch.equal(first["W1"], other["W1"]), "nets built with differently seeded generators are equal."


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


@points(1)
def test_initial_loss_is_close_to_log_of_the_number_of_classes(student):
    """with the default std = 1e-2 the initial loss on 100 inputs of 64 pixels is within 0.05 of log(10)"""
    X, y = random_images(100, 1)
    loss = student.run(initial_loss, [64, 100, 10], 0, X, y)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0, (
        f"loss should be a 0-d tensor, got {tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__}.")
    assert abs(loss.item() - math.log(10)) < INITIAL_LOSS_TOLERANCE, (
        f"the initial loss of TwoLayerNet(64, 100, 10) on 100 random inputs is {loss.item():.4g}; with small weights "
        f"every class gets probability about 1/10, so it should be close to log(10) = {math.log(10):.4f}. "
        + ("It is negative: the cross-entropy is -log p, which is >= 0." if loss.item() < 0 else
           "About 100 times too large: average over the batch, do not sum." if loss.item() > 50 else
           "Check std = 1e-2 by default and zero biases."))


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
        assert set(got["grads"]) == set(KEYS), (f"grads should have the keys {list(KEYS)}, got "
                                                f"{sorted(got['grads'])}.")
        for key in KEYS:
            expect_close(got["grads"][key], grads[key], name=f"grads['{key}'] {where}", hint=LAYERS_HINT)


@points(1)
def test_overfits_50_samples(student):
    """trained by the grader's plain gradient descent, the net fits 50 samples perfectly (100% training accuracy)"""
    X, y = random_images(OVERFIT["n"], OVERFIT["seed"])
    got = student.run(overfit, X, y, OVERFIT["hidden"], OVERFIT["std"], OVERFIT["lr"], OVERFIT["steps"],
                      OVERFIT["seed"], timeout=60)
    accuracy = (got["predictions"] == y).double().mean().item()
    losses = got["losses"]
    assert accuracy == 1.0, (
        f"after {OVERFIT['steps']} steps of gradient descent (lr {OVERFIT['lr']}) on {OVERFIT['n']} samples, the "
        f"net classifies {accuracy:.0%} of them correctly; a correct network memorises all of them. The loss went "
        f"from {losses[0]:.3g} to {losses[-1]:.3g}"
        + (" and went up: a gradient with the wrong sign?" if losses[-1] > losses[0] else "") + ". " + LAYERS_HINT)


@points(1)
def test_two_layer_net_is_implemented_by_hand(student):
    """TwoLayerNet uses no autograd and nothing from torch.nn"""
    try:  # a class that does not run yet earns nothing here either
        student.run(initial_loss, [4, 5, 3], 0, torch.randn(2, 4), torch.tensor([0, 2]))
    except StudentError as error:
        raise AssertionError(f"TwoLayerNet does not run yet ({error}); this check counts once it does.") from None
    expect_implemented_without(student, "TwoLayerNet", FORBIDDEN_DOTTED)
    tree = ast.parse(student.source_of("TwoLayerNet"))
    used = sorted({node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} & FORBIDDEN_ATTRIBUTES)
    assert not used, (f"TwoLayerNet uses .{used[0]}: chain your layers' backward passes instead of autograd.")
