"""Hidden tests for the MLP module (Chapter 2, section 3.2).

The activations passed in are PyTorch's own (torch.relu, torch.tanh), so these tests do not depend on the
student's activation functions. References: the forward pass recomputed here in float64 from the weights the
student's layers hold, and autograd through it.
"""
import torch

from dlvision.grading import expect_close, points

ARCHITECTURES = [([3, 1], "relu"), ([2, 5, 3], "relu"), ([4, 8, 8, 2], "tanh"), ([1, 6, 1], "tanh"),
                 ([5, 7, 4, 3, 6], "relu")]

LAST_LAYER_HINT = ("Apply the activation after every layer except the last: the last layer's outputs are the "
                   "logits and must be able to take any value.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def mlp_structure(sizes, act):
    """What an MLP(sizes, torch.<act>) is made of."""
    import torch

    net = MLP(sizes, getattr(torch, act))
    return {
        "is_module": isinstance(net, torch.nn.Module),
        "own_linear_shapes": [list(m.weight.shape) for m in net.modules() if isinstance(m, Linear)],
        "other_linear_layers": sum(isinstance(m, torch.nn.Linear) for m in net.modules()),
        "parameter_count": sum(p.numel() for p in net.parameters()),
    }


def mlp_forward(sizes, act, x):
    """A fresh MLP's layers (weight, bias), in order, and its output for x."""
    import torch

    torch.manual_seed(0)
    net = MLP(sizes, getattr(torch, act))
    layers = [(m.weight, m.bias) for m in net.modules() if isinstance(m, Linear)]
    return {"layers": layers, "out": net(x)}


def mlp_gradients(sizes, act, x, upstream):
    """The layers of a fresh MLP and the gradients backward() leaves on them."""
    import torch

    torch.manual_seed(1)
    net = MLP(sizes, getattr(torch, act))
    out = net(x)
    if isinstance(out, torch.Tensor) and out.requires_grad:
        (out * upstream).sum().backward()
    return [(m.weight, m.bias, m.weight.grad, m.bias.grad) for m in net.modules() if isinstance(m, Linear)]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference_forward(layers, act, x):
    h = x
    for k, (weight, bias) in enumerate(layers):
        h = h @ weight.T + bias
        if k < len(layers) - 1:
            h = getattr(torch, act)(h)
    return h


def expected_shapes(sizes):
    return [[n_out, n_in] for n_in, n_out in zip(sizes[:-1], sizes[1:])]


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_mlp_has_one_of_your_linear_layers_per_pair_of_sizes(student):
    """MLP(sizes, ...) is an nn.Module made of len(sizes) - 1 of your Linear layers, in order"""
    for sizes, act in ARCHITECTURES:
        facts = student.run(mlp_structure, sizes, act)
        assert facts["is_module"], "MLP must subclass torch.nn.Module and call super().__init__() first."
        if facts["other_linear_layers"]:
            raise AssertionError(f"MLP({sizes}) uses torch.nn.Linear; build it from your own Linear class.")
        assert facts["own_linear_shapes"] == expected_shapes(sizes), (
            f"MLP({sizes}) should hold Linear layers with weights of shapes {expected_shapes(sizes)} "
            f"(one per consecutive pair of sizes), but the registered Linear layers have "
            f"{facts['own_linear_shapes']}."
            + (" None were found: keep the layers in a torch.nn.ModuleList, not a plain Python list, so that "
               "the module registers them." if not facts["own_linear_shapes"] else ""))


@points(1)
def test_mlp_parameters_include_every_layer(student):
    """MLP.parameters() returns the weights and biases of every layer"""
    for sizes, act in ARCHITECTURES:
        facts = student.run(mlp_structure, sizes, act)
        expected = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        assert facts["parameter_count"] == expected, (
            f"MLP({sizes}).parameters() holds {facts['parameter_count']} numbers; the layers have {expected}. "
            "Layers kept in a plain Python list (or a dict) are invisible to parameters(), so an optimiser "
            "never trains them: use torch.nn.ModuleList.")


@points(2)
def test_mlp_forward_applies_the_activation_between_layers_only(student):
    """MLP(x) is Linear, activation, Linear, ..., Linear, with no activation after the last layer"""
    g = torch.Generator().manual_seed(3)
    for sizes, act in ARCHITECTURES:
        for n in (1, 9):
            x = torch.randn(n, sizes[0], generator=g)
            got = student.run(mlp_forward, sizes, act, x)
            layers = got["layers"]
            assert [list(w.shape) for w, _ in layers] == expected_shapes(sizes), (
                f"MLP({sizes}) should hold one of your Linear layers per consecutive pair of sizes, in order.")
            expected = reference_forward([(w.double(), b.double()) for w, b in layers], act, x.double()).float()
            expect_close(got["out"], expected,
                         name=f"MLP({sizes}, torch.{act})(x) for x of shape ({n}, {sizes[0]})", hint=LAST_LAYER_HINT)


@points(1)
def test_mlp_gradients_reach_every_layer(student):
    """backward() through MLP fills the .grad of every layer's weight and bias correctly"""
    g = torch.Generator().manual_seed(4)
    sizes, act = [4, 6, 5, 3], "tanh"
    x, upstream = torch.randn(7, 4, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g,
                                                                                 dtype=torch.float64)
    got = student.run(mlp_gradients, sizes, act, x.float(), upstream.float())
    assert len(got) == len(sizes) - 1, (f"MLP({sizes}) should register {len(sizes) - 1} of your Linear layers, "
                                        f"found {len(got)}: keep them in a torch.nn.ModuleList.")
    leaves = [(w.double().requires_grad_(True), b.double().requires_grad_(True)) for w, b, _, _ in got]
    (reference_forward(leaves, act, x.float().double()) * upstream.float().double()).sum().backward()
    for k, ((_, _, weight_grad, bias_grad), (w, b)) in enumerate(zip(got, leaves)):
        assert weight_grad is not None and bias_grad is not None, (
            f"layer {k} got no gradient: is its output used, undetached, in forward?")
        expect_close(weight_grad, w.grad.float(), name=f"layer {k}'s weight.grad",
                     hint=LAST_LAYER_HINT)
        expect_close(bias_grad, b.grad.float(), name=f"layer {k}'s bias.grad",
                     hint=LAST_LAYER_HINT)
