"""Hidden tests for Conv2d and SmallCNN (Chapter 4, section 6.1).

Conv2d: its parameters' shapes, dtype and initialisation (uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)] from torch's
global generator: checked by its range, mean and spread over thousands of draws, and reproducibility under
torch.manual_seed), and its forward pass with weights set by the grader against F.conv2d. SmallCNN: the stated
parameter names and shapes, and its scores and parameter gradients, for parameters set by the grader, against the
stated network written here with F.conv2d and F.max_pool2d, in float64 through autograd. Bounds: THRESHOLDS.md.
"""
import math

import torch
import torch.nn.functional as F

from dlvision.grading import expect_close, expect_implemented_without, expect_keeps_device, points, requires

SHAPES = {"conv1.weight": (8, 1, 3, 3), "conv1.bias": (8,), "conv2.weight": (16, 8, 3, 3), "conv2.bias": (16,),
          "fc.weight": (10, 256), "fc.bias": (10,)}

#: Layers whose initial draws are pooled for the statistical checks: (in_ch, out_ch, k), INIT_SEEDS seeds each.
INIT_LAYERS = [(1, 8, 3), (8, 16, 3), (3, 4, 5)]
INIT_SEEDS = 50
#: Bounds of the initialisation check (THRESHOLDS.md), on draws divided by their bound 1/sqrt(fan_in):
#: |std * sqrt(3) - 1| and |mean|.
STD_TOLERANCE, MEAN_TOLERANCE = 0.08, 0.08

FORBIDDEN = ([f"torch.{n}" for n in dir(torch) if "convolution" in n or n.startswith("conv") or "max_pool" in n]
             + [f"torch.nn.functional.{n}" for n in dir(F) if n.startswith("conv") or "max_pool" in n
                or "max_unpool" in n or "lp_pool" in n or n in ("unfold", "fold")]
             + [f"torch.nn.{n}" for n in dir(torch.nn) if "Conv" in n or "MaxPool" in n or "MaxUnpool" in n
                or "LPPool" in n or n in ("Unfold", "Fold")]
             + ["torch.nn.grad", "torch.nn.modules.conv", "torch.nn.modules.fold", "torch.nn.modules.pooling"])
ATTRIBUTES = {"conv1d", "conv2d", "conv3d", "convolution", "max_pool1d", "max_pool2d", "max_pool3d",
              "max_pool2d_with_indices"}

ARCHITECTURE_HINT = ("conv1 = Conv2d(1, 8, 3, padding=1), ReLU, MaxPool2dFunction.apply(., 2, 2), conv2 = Conv2d(8, "
                     "16, 3, padding=1), ReLU, MaxPool2dFunction.apply(., 2, 2), flatten(1), fc = "
                     "torch.nn.Linear(256, 10): in this order.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def initial_conv_parameters(layers, seeds):
    """Conv2d(in_ch, out_ch, k) after torch.manual_seed(seed), for each layer and seed (and the first seed twice)."""
    import torch

    results = []
    for in_ch, out_ch, k in layers:
        for seed in list(seeds) + [seeds[0]]:
            torch.manual_seed(seed)
            layer = Conv2d(in_ch, out_ch, k)
            results.append({name: p for name, p in layer.named_parameters()})
    return results


def conv_layer_forward(cases):
    """Conv2d(in_ch, out_ch, k, **kwargs) with the grader's weight and bias: its output, and the gradients of
    sum(output * dout) for its weight, bias and input (float64)."""
    import torch

    results = []
    for x, weight, bias, kwargs, dout in cases:
        layer = Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], **kwargs).double()
        with torch.no_grad():
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
        x = x.clone().requires_grad_(True)
        out = layer(x)
        out.backward(dout)
        results.append({"out": out.detach(), "dweight": layer.weight.grad, "dbias": layer.bias.grad, "dx": x.grad})
    return results


def small_cnn_parameters(seed):
    """The parameters of a fresh SmallCNN: name -> tensor."""
    import torch

    torch.manual_seed(seed)
    return {name: p.detach() for name, p in SmallCNN().named_parameters()}


def small_cnn_scores_and_gradients(params, x, dout):
    """SmallCNN in float64 with the grader's parameters: scores(x), and the gradients of sum(scores * dout)."""
    import torch

    model = SmallCNN().double()
    model.load_state_dict(params)
    scores = model(x)
    scores.backward(dout)
    return {"scores": scores.detach(), "grads": {name: p.grad for name, p in model.named_parameters()}}


def small_cnn_on(x, device="cpu"):
    """A fresh SmallCNN moved to `device` (when not the CPU), run on x (which the harness put on `device`)."""
    import torch

    torch.manual_seed(0)
    model = SmallCNN()
    if device != "cpu":
        model = model.to(device)
    return model(x)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference_network(params, x):
    h = F.max_pool2d(torch.relu(F.conv2d(x, params["conv1.weight"], params["conv1.bias"], padding=1)), 2, 2)
    h = F.max_pool2d(torch.relu(F.conv2d(h, params["conv2.weight"], params["conv2.bias"], padding=1)), 2, 2)
    return F.linear(h.flatten(1), params["fc.weight"], params["fc.bias"])


def grader_parameters(seed):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=g, dtype=torch.float64) * (0.5 if name.endswith("weight") else 0.1)
            for name, shape in SHAPES.items()}


def check_parameter_dict(params, owner, expected):
    found = ({name: tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__ for name, p in params.items()}
             if isinstance(params, dict) else type(params).__name__)
    assert found == expected, f"{owner} should have exactly the parameters {expected}, got {found}."


# --- Conv2d ----------------------------------------------------------------------------------------------------

@points(1)
def test_conv2d_layer_parameters_are_initialised_as_stated(student):
    """Conv2d's weight and bias: the stated shapes, float32, uniform in +-1/sqrt(fan_in), reproducible with a seed"""
    seeds = list(range(100, 100 + INIT_SEEDS))
    got = student.run(initial_conv_parameters, INIT_LAYERS, seeds)
    per_layer = len(seeds) + 1
    pooled = {"weight": [], "bias": []}   # every draw divided by its layer's bound: uniform in [-1, 1]
    for index, (in_ch, out_ch, k) in enumerate(INIT_LAYERS):
        draws = got[index * per_layer:(index + 1) * per_layer]
        bound = 1 / math.sqrt(in_ch * k * k)
        layer = f"Conv2d({in_ch}, {out_ch}, {k})"
        for params in draws:
            check_parameter_dict(params, layer, {"weight": (out_ch, in_ch, k, k), "bias": (out_ch,)})
            for name, p in params.items():
                assert p.dtype == torch.float32, f"{layer}.{name} should be float32, got {p.dtype}."
                assert p.abs().max().item() <= bound * (1 + 1e-6), (
                    f"{layer}.{name} has entries up to {p.abs().max().item():.4g} in size; they should lie in "
                    f"[-1/sqrt(fan_in), 1/sqrt(fan_in)] = [-{bound:.4g}, {bound:.4g}] with fan_in = in_ch * k * k "
                    f"= {in_ch * k * k}.")
        assert all(torch.equal(draws[0][n], draws[-1][n]) for n in ("weight", "bias")), (
            f"{layer} built twice after the same torch.manual_seed gave different parameters: draw them from "
            "torch's global generator (torch.empty(...).uniform_(...), torch.rand, ...).")
        assert not torch.equal(draws[0]["weight"], draws[1]["weight"]), (
            f"{layer} gave the same weights after two different seeds: draw them at random from torch's global "
            "generator.")
        for name in pooled:
            pooled[name] += [d[name].double().flatten() / bound for d in draws[:-1]]
    for name, values in pooled.items():
        values = torch.cat(values)
        std_error, mean_error = abs(values.std().item() * math.sqrt(3) - 1), abs(values.mean().item())
        assert std_error < STD_TOLERANCE and mean_error < MEAN_TOLERANCE, (
            f"over {len(seeds)} draws of each of {len(INIT_LAYERS)} layers, the {name} entries divided by "
            f"1/sqrt(fan_in) have mean {values.mean().item():.3f} and standard deviation {values.std().item():.3f}; "
            f"uniform values in [-1, 1] have mean 0 and standard deviation {1 / math.sqrt(3):.3f}. Draw every "
            "entry uniformly in [-1/sqrt(fan_in), 1/sqrt(fan_in)], the biases too.")


@points(1)
def test_conv2d_layer_forward_and_gradients_match_torch(student):
    """Conv2d's output is F.conv2d of its weight and bias (defaults: stride 1, padding 0), and gradients flow to both"""
    g = torch.Generator().manual_seed(2)
    cases = []
    for (N, C, H, W), (F_, k), kwargs in (((2, 3, 7, 6), (4, 3), {}), ((1, 1, 8, 8), (2, 3), {"padding": 1}),
                                          ((2, 2, 9, 7), (3, 2), {"stride": 2, "padding": 2}),
                                          ((1, 2, 6, 6), (2, 1), {"stride": 3})):
        x, weight, bias = (torch.randn(shape, generator=g, dtype=torch.float64)
                           for shape in ((N, C, H, W), (F_, C, k, k), (F_,)))
        out_shape = F.conv2d(x, weight, bias, **kwargs).shape
        cases.append((x, weight, bias, kwargs, torch.randn(out_shape, generator=g, dtype=torch.float64)))
    for (x, weight, bias, kwargs, dout), got in zip(cases, student.run(conv_layer_forward, cases)):
        settings = ", ".join(f"{k}={v}" for k, v in kwargs.items()) or "default stride and padding"
        where = f"Conv2d({weight.shape[1]}, {weight.shape[0]}, {weight.shape[2]}) with {settings}, x {tuple(x.shape)}"
        leaves = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
        out = F.conv2d(leaves[0], leaves[1], leaves[2], **kwargs)
        out.backward(dout)
        expect_close(got["out"], out.detach(), name=f"the output of {where}",
                     hint="forward(x) is Conv2dFunction.apply(x, self.weight, self.bias, stride, padding), with the "
                          "stride and padding given to the constructor (defaults 1 and 0).")
        for key, leaf in (("dweight", leaves[1]), ("dbias", leaves[2]), ("dx", leaves[0])):
            assert got[key] is not None, (f"no gradient reached {key[1:]} of {where}: keep weight and bias as "
                                          "torch.nn.Parameter and call Conv2dFunction.apply on them.")
            expect_close(got[key], leaf.grad, name=f"the gradient for {key[1:]} of {where}")


# --- SmallCNN --------------------------------------------------------------------------------------------------

@points(1)
def test_small_cnn_has_the_stated_parameters(student):
    """SmallCNN's parameters are exactly conv1.weight (8, 1, 3, 3), conv1.bias, conv2.weight, conv2.bias, fc.*"""
    params = student.run(small_cnn_parameters, 0)
    check_parameter_dict(params, "SmallCNN()", SHAPES)
    for name, p in params.items():
        assert p.dtype == torch.float32, f"SmallCNN's {name} should be float32, got {p.dtype}."
    layers = [("conv1", 1 * 9), ("conv2", 8 * 9), ("fc", 256)]
    for layer, fan_in in layers:
        bound = 1 / math.sqrt(fan_in)
        largest = max(params[f"{layer}.weight"].abs().max().item(), params[f"{layer}.bias"].abs().max().item())
        assert 0 < largest <= bound * (1 + 1e-6), (
            f"SmallCNN's {layer} parameters reach {largest:.4g} in size; PyTorch's initialisation keeps them within "
            f"1/sqrt(fan_in) = {bound:.4g} (and not all zero).")


@points(1)
def test_small_cnn_scores_and_gradients_match_the_stated_network(student):
    """SmallCNN's scores and parameter gradients match the stated network through autograd, float64, N = 1 and 6"""
    for n, seed in ((1, 3), (6, 4)):
        params = grader_parameters(seed)
        g = torch.Generator().manual_seed(50 + seed)
        x = torch.rand(n, 1, 16, 16, generator=g, dtype=torch.float64)
        dout = torch.randn(n, 10, generator=g, dtype=torch.float64)
        got = student.run(small_cnn_scores_and_gradients, params, x, dout)
        leaves = {name: p.clone().requires_grad_(True) for name, p in params.items()}
        scores = reference_network(leaves, x)
        scores.backward(dout)
        expect_close(got["scores"], scores.detach(), name=f"SmallCNN's scores for {n} image(s)",
                     hint=ARCHITECTURE_HINT)
        grads = got["grads"]
        check_parameter_dict(grads, "SmallCNN's gradients", {name: tuple(p.shape) for name, p in params.items()})
        for name, leaf in leaves.items():
            expect_close(grads[name], leaf.grad, name=f"the gradient for {name} ({n} image(s))",
                         hint="Training must reach every parameter: " + ARCHITECTURE_HINT)


@points(1)
@requires("test_small_cnn_scores_and_gradients_match_the_stated_network")
def test_small_cnn_is_built_on_your_autograd_functions(student):
    """SmallCNN convolves and pools with your Conv2dFunction and MaxPool2dFunction, nothing ready-made"""
    used = student.reach("SmallCNN").globals_used
    missing = [name for name in ("Conv2dFunction", "MaxPool2dFunction") if name not in used]
    assert not missing, (f"SmallCNN does not use your {' and '.join(missing)}: its convolutions (through Conv2d) and "
                         "its poolings must run your autograd functions, so that training uses your backward passes.")
    try:
        expect_implemented_without(student, "SmallCNN", FORBIDDEN, attributes=ATTRIBUTES)
    except AssertionError as error:
        raise AssertionError(f"{error} Use your Conv2d (Conv2dFunction) and MaxPool2dFunction.") from None


@points(1)
@requires("test_small_cnn_scores_and_gradients_match_the_stated_network")
def test_small_cnn_keeps_the_device_of_its_input(student):
    """SmallCNN moved to CUDA computes on CUDA; on the CPU, it makes nothing on the global device (stand-in checks)"""
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    expect_keeps_device(student, small_cnn_on, x,
                        hint="Create parameters with torch.nn.Parameter (on the CPU, so that model.to(device) moves "
                             "them) and every other tensor on the device of the input.")
