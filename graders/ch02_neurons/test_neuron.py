"""Hidden tests for neuron(x, w, b, activation) (Chapter 2, section 3).

The activations passed in are PyTorch's own (torch.sigmoid, torch.tanh, torch.relu) so that these tests do
not depend on the student's activation functions. References: the same formula evaluated in float64 here.
"""
import torch

from dlvision.grading import expect_close, expect_keeps_device, points

ORDER_HINT = ("neuron computes activation(x @ w + b): the weighted sum, plus the bias, and only then the "
              "activation (the bias goes inside it).")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def neuron_outputs(cases):
    """neuron(x, w, b, activation) for each (x, w, b, activation name)."""
    import torch

    return [neuron(x, w, b, getattr(torch, act)) for x, w, b, act in cases]


def neuron_gradients(x, w, b, act, upstream):
    """Gradients reaching x, w and b through neuron(...); None where the graph is cut."""
    import torch

    x, w, b = (t.clone().requires_grad_(True) for t in (x, w, b))
    y = neuron(x, w, b, getattr(torch, act))
    if not isinstance(y, torch.Tensor) or not y.requires_grad:
        return None
    (y * upstream).sum().backward()
    return {"x": x.grad, "w": w.grad, "b": b.grad}


def neuron_with_tanh(x, w, b, device="cpu"):
    """neuron(x, w, b, torch.tanh), for expect_keeps_device (which moves x, w and b to the device under test)."""
    import torch

    return neuron(x, w, b, torch.tanh)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference(x, w, b, act):
    b = torch.as_tensor(b, dtype=torch.float64)
    return getattr(torch, act)(x.double() @ w.double() + b).to(x.dtype)


def describe(x, w, b, act):
    bias = f"b of shape {tuple(b.shape)}" if isinstance(b, torch.Tensor) else f"b = {b!r}"
    return (f"neuron(x, w, b, torch.{act}) with x of shape {tuple(x.shape)}, w of shape {tuple(w.shape)}, {bias}, "
            f"{str(x.dtype).removeprefix('torch.')}")


def check(student, cases, hint):
    got = student.run(neuron_outputs, cases)
    for case, y in zip(cases, got):
        expect_close(y, reference(*case), name=describe(*case), hint=hint)


def draw(g, shape, dtype, scale=1.0):
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_single_neuron_on_a_batch(student):
    """one neuron: w of shape (D,) and a scalar bias give one output per input row, shape (N,)"""
    g = torch.Generator().manual_seed(1)
    cases = []
    for dtype in (torch.float32, torch.float64):
        for n, d, act in ((1, 1, "sigmoid"), (1, 5, "tanh"), (7, 3, "sigmoid"), (16, 9, "relu")):
            cases.append((draw(g, (n, d), dtype), draw(g, (d,), dtype), 0.75, act))
        cases.append((draw(g, (5, 4), dtype), draw(g, (4,), dtype), draw(g, (), dtype), "tanh"))  # 0-d bias
    check(student, cases, ORDER_HINT + " For w of shape (D,), x @ w already has shape (N,).")


@points(1)
def test_layer_of_k_neurons_on_a_batch(student):
    """K neurons: w of shape (D, K) and b of shape (K,) give outputs of shape (N, K)"""
    g = torch.Generator().manual_seed(2)
    cases = []
    for dtype in (torch.float32, torch.float64):
        for n, d, k, act in ((1, 1, 1, "tanh"), (1, 4, 3, "sigmoid"), (6, 3, 5, "relu"), (10, 7, 2, "tanh")):
            cases.append((draw(g, (n, d), dtype), draw(g, (d, k), dtype), draw(g, (k,), dtype), act))
    check(student, cases, ORDER_HINT + " x @ w of shapes (N, D) @ (D, K) is (N, K), and b of shape (K,) "
                          "broadcasts over the rows.")
    # The docstring's "dtype and device of x", on a GPU or the stand-in: it can only fail this test.
    x, w, b = draw(g, (6, 3), torch.float32), draw(g, (3, 5), torch.float32), draw(g, (5,), torch.float32)
    expect_keeps_device(student, neuron_with_tanh, x, w, b, hint=(
        "neuron must work on any device and return its output on the device of x: compute activation(x @ w + b) "
        "from the tensors it is given, without making new ones on the CPU or on the notebook's global `device`."))


@points(1)
def test_gradients_reach_x_w_and_b(student):
    """gradients flow through neuron to x, w and b"""
    g = torch.Generator().manual_seed(3)
    x, w, b = draw(g, (6, 4), torch.float64), draw(g, (4, 3), torch.float64), draw(g, (3,), torch.float64)
    upstream = draw(g, (6, 3), torch.float64)
    grads = student.run(neuron_gradients, x, w, b, "tanh", upstream)
    assert grads is not None, ("neuron's output is not connected to its inputs in the autograd graph: use torch "
                               "operations only (no .detach(), .item(), .numpy() or torch.tensor(...)).")
    leaves = {k: v.clone().requires_grad_(True) for k, v in {"x": x, "w": w, "b": b}.items()}
    (torch.tanh(leaves["x"] @ leaves["w"] + leaves["b"]) * upstream).sum().backward()
    for key, leaf in leaves.items():
        assert grads[key] is not None, f"no gradient reached {key}: is it used in the computation, undetached?"
        expect_close(grads[key], leaf.grad, name=f"the gradient reaching {key}", hint=ORDER_HINT)
