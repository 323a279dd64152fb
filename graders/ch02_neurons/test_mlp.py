"""Hidden tests for the MLP module (Chapter 2, section 3.2).

The activations passed in are PyTorch's own (torch.relu, torch.tanh), so these tests do not depend on the
student's activation functions. Each test gives the student's Linear layers (found through net.modules(), in
order) weights and biases drawn here, and compares what the network computes with the same network computed here
in float64 from those tensors, and autograd through it: nothing the network computes for itself decides a pass.
"""
import torch

from dlvision.grading import expect_close, expect_implemented_without, expect_keeps_device, points, requires

ARCHITECTURES = [([3, 1], "relu"), ([2, 5, 3], "relu"), ([4, 8, 8, 2], "tanh"), ([1, 6, 1], "tanh"),
                 ([5, 7, 4, 3, 6], "relu")]

LAST_LAYER_HINT = ("Apply the activation after every layer except the last: the last layer's outputs are the "
                   "logits and must be able to take any value.")

#: The learning rate of the update in test_mlp_parameters_are_what_an_optimiser_updates.
LR = 0.5


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

# Each scenario builds a fresh MLP(sizes, torch.<act>) and copies the grader's (W, b) into its Linear layers, found
# in net.modules() in order. It always returns the shapes of the layers found and the number of torch.nn.Linear
# modules (for the failure message), and nothing else unless those shapes are the grader's. (A scenario's source
# is sent on its own: no shared helpers, and at most 1000 characters.)

def mlp_forward_with(sizes, act, layers, x):
    """The network's output for x."""
    import torch

    net = MLP(sizes, getattr(torch, act))
    found = [m for m in net.modules() if isinstance(m, Linear)]
    shapes = [list(getattr(m, "weight", torch.empty(0)).shape) for m in found]
    result = {"shapes": shapes, "others": sum(isinstance(m, torch.nn.Linear) for m in net.modules())}
    if shapes != [list(w.shape) for w, _ in layers]:
        return result
    with torch.no_grad():
        for m, (w, b) in zip(found, layers):
            m.weight.copy_(w)
            m.bias.copy_(b)
    return {**result, "out": net(x)}


def mlp_gradients_with(sizes, act, layers, x, upstream):
    """The gradients backward() of sum(net(x) * upstream) leaves on each layer's weight and bias."""
    import torch

    net = MLP(sizes, getattr(torch, act))
    found = [m for m in net.modules() if isinstance(m, Linear)]
    shapes = [list(getattr(m, "weight", torch.empty(0)).shape) for m in found]
    result = {"shapes": shapes, "others": sum(isinstance(m, torch.nn.Linear) for m in net.modules())}
    if shapes != [list(w.shape) for w, _ in layers]:
        return result
    with torch.no_grad():
        for m, (w, b) in zip(found, layers):
            m.weight.copy_(w)
            m.bias.copy_(b)
    out = net(x)
    if isinstance(out, torch.Tensor) and out.requires_grad:
        (out * upstream).sum().backward()
    return {**result, "grads": [(m.weight.grad, m.bias.grad) for m in found]}


def mlp_after_a_gradient_step(sizes, act, layers, x, upstream, lr):
    """Output for x after one gradient-descent step on sum(net(x) * upstream) over net.parameters()."""
    import torch

    net = MLP(sizes, getattr(torch, act))
    found = [m for m in net.modules() if isinstance(m, Linear)]
    shapes = [list(getattr(m, "weight", torch.empty(0)).shape) for m in found]
    result = {"shapes": shapes, "others": sum(isinstance(m, torch.nn.Linear) for m in net.modules())}
    if shapes != [list(w.shape) for w, _ in layers]:
        return result
    with torch.no_grad():
        for m, (w, b) in zip(found, layers):
            m.weight.copy_(w)
            m.bias.copy_(b)
    params = list(net.parameters())
    (net(x) * upstream).sum().backward()
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p -= lr * p.grad
    return {**result, "numel": sum(p.numel() for p in params), "out": net(x)}


def MLP_network(sizes, x, device="cpu"):
    """MLP(sizes, torch.relu)(x), for expect_keeps_device (which moves x): built as the contract says (its Linear
    layers on the CPU) and moved with .to(device) when the device under test is not the CPU."""
    import torch

    net = MLP(sizes, torch.relu)
    if device != "cpu":
        net = net.to(device)
    return net(x)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def expected_shapes(sizes):
    return [[n_out, n_in] for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def draw_layers(g, sizes, dtype=torch.float32):
    """One (W, b) per consecutive pair of sizes, with PyTorch's initial scale (float64 draws, cast)."""
    return [((torch.rand(n_out, n_in, generator=g, dtype=torch.float64) * 2 - 1).div(n_in ** 0.5).to(dtype),
             (torch.rand(n_out, generator=g, dtype=torch.float64) * 2 - 1).div(n_in ** 0.5).to(dtype))
            for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def reference_forward(layers, act, x):
    h = x
    for k, (weight, bias) in enumerate(layers):
        h = h @ weight.T + bias
        if k < len(layers) - 1:
            h = getattr(torch, act)(h)
    return h


def check_structure(got, sizes):
    """The layers found must be one of the student's Linear per consecutive pair of sizes, in order."""
    if got["shapes"] == expected_shapes(sizes):
        return
    message = (f"MLP({sizes}) should hold one of your Linear layers per consecutive pair of sizes, in order, with "
               f"weights of shapes {expected_shapes(sizes)}; the Linear layers found in net.modules() have "
               f"{got['shapes']}.")
    if not got["shapes"] and got["others"]:
        message += " It uses torch.nn.Linear: build it from your own Linear class."
    elif not got["shapes"]:
        message += (" None were found: keep the layers in a torch.nn.ModuleList, not a plain Python list, so that "
                    "the module registers them.")
    raise AssertionError(message)


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_mlp_forward_applies_the_activation_between_layers_only(student):
    """MLP(x) is Linear, activation, Linear, ..., Linear, with no activation after the last layer"""
    g = torch.Generator().manual_seed(3)
    for sizes, act in ARCHITECTURES:
        for n in (1, 9):
            layers, x = draw_layers(g, sizes), torch.randn(n, sizes[0], generator=g)
            got = student.run(mlp_forward_with, sizes, act, layers, x)
            check_structure(got, sizes)
            expected = reference_forward([(w.double(), b.double()) for w, b in layers], act, x.double()).float()
            expect_close(got["out"], expected,
                         name=f"MLP({sizes}, torch.{act})(x) for x of shape ({n}, {sizes[0]})", hint=LAST_LAYER_HINT)
    # Your Linear's contract, "created on the CPU; move them with .to(device)", holds for the MLP built from it, on
    # a GPU or the stand-in: it can only fail this test.
    expect_keeps_device(student, MLP_network, [4, 6, 3], torch.randn(5, 4, generator=g), hint=(
        "Build the layers on the CPU, as your Linear creates them, and let the caller move the whole network with "
        "net.to(device) (a ModuleList moves every layer). Moving layers to the notebook's global `device` inside "
        "MLP puts them on the GPU even when the caller wants the network on the CPU."))


@points(1)
def test_mlp_gradients_reach_every_layer(student):
    """backward() through MLP fills the .grad of every layer's weight and bias correctly"""
    g = torch.Generator().manual_seed(4)
    sizes, act = [4, 6, 5, 3], "tanh"
    layers = draw_layers(g, sizes)
    x, upstream = torch.randn(7, 4, generator=g), torch.randn(7, 3, generator=g)
    got = student.run(mlp_gradients_with, sizes, act, layers, x, upstream)
    check_structure(got, sizes)
    leaves = [(w.double().requires_grad_(True), b.double().requires_grad_(True)) for w, b in layers]
    (reference_forward(leaves, act, x.double()) * upstream.double()).sum().backward()
    for k, ((weight_grad, bias_grad), (w, b)) in enumerate(zip(got["grads"], leaves)):
        assert weight_grad is not None and bias_grad is not None, (
            f"layer {k} got no gradient: is its output used, undetached, in forward?")
        expect_close(weight_grad, w.grad.float(), name=f"layer {k}'s weight.grad", hint=LAST_LAYER_HINT)
        expect_close(bias_grad, b.grad.float(), name=f"layer {k}'s bias.grad", hint=LAST_LAYER_HINT)


@points(1)
def test_mlp_parameters_are_what_an_optimiser_updates(student):
    """a gradient-descent step over MLP.parameters() updates the weights and biases of every layer"""
    g = torch.Generator().manual_seed(5)
    for sizes, act in ARCHITECTURES[1:]:
        layers = draw_layers(g, sizes)
        x, upstream = torch.randn(6, sizes[0], generator=g), torch.randn(6, sizes[-1], generator=g)
        got = student.run(mlp_after_a_gradient_step, sizes, act, layers, x, upstream, LR)
        check_structure(got, sizes)
        expected_numel = sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        assert got["numel"] == expected_numel, (
            f"MLP({sizes}).parameters() holds {got['numel']} numbers; the layers have {expected_numel}. Layers "
            "kept in a plain Python list (or a dict) are invisible to parameters(), so an optimiser never trains "
            "them: use torch.nn.ModuleList.")
        leaves = [(w.double().requires_grad_(True), b.double().requires_grad_(True)) for w, b in layers]
        (reference_forward(leaves, act, x.double()) * upstream.double()).sum().backward()
        stepped = [(w.detach() - LR * w.grad, b.detach() - LR * b.grad) for w, b in leaves]
        expect_close(got["out"], reference_forward(stepped, act, x.double()).float(),
                     name=f"MLP({sizes}, torch.{act})(x) after one gradient-descent step over its parameters()",
                     hint="parameters() must hold the weight and bias of every layer (keep the layers in a "
                          "torch.nn.ModuleList), and forward must use those registered tensors.")


@points(1)
@requires("test_mlp_forward_applies_the_activation_between_layers_only")
def test_mlp_uses_your_linear_not_torch_nn_linear(student):
    """MLP is built from your Linear, without torch.nn.Linear or torch.nn.functional"""
    expect_implemented_without(student, "MLP", ["torch.nn.Linear", "torch.nn.LazyLinear", "torch.nn.Bilinear",
                                                "torch.nn.functional"])
