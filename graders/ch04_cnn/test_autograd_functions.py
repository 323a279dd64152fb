"""Hidden tests for Conv2dFunction and MaxPool2dFunction (Chapter 4, section 6).

The grader's scenario runs Conv2dFunction.apply / MaxPool2dFunction.apply on leaves that require gradients, calls
backward with a random upstream gradient, and returns the outputs and the leaves' gradients. They are compared
here with F.conv2d / F.max_pool2d and autograd through them, in float64 (default tolerances of expect_close).
"""
import torch
import torch.nn.functional as F

from dlvision.grading import expect_close, expect_implemented_without, points, requires

#: Off limits inside the autograd functions (and everything they call): ready-made convolutions and poolings, and
#: autograd used to compute the gradients (torch.autograd.Function itself is the point of the exercise).
FORBIDDEN = ([f"torch.{n}" for n in dir(torch) if "convolution" in n or n.startswith("conv") or "max_pool" in n]
             + [f"torch.nn.functional.{n}" for n in dir(F) if n.startswith("conv") or "max_pool" in n
                or "max_unpool" in n or "lp_pool" in n or n in ("unfold", "fold")]
             + [f"torch.nn.{n}" for n in dir(torch.nn) if "Conv" in n or "MaxPool" in n or "MaxUnpool" in n
                or "LPPool" in n or n in ("Unfold", "Fold")]
             + ["torch.nn.grad", "torch.nn.modules.conv", "torch.nn.modules.fold", "torch.nn.modules.pooling",
                "torch.autograd.grad", "torch.autograd.backward", "torch.autograd.functional", "torch.func",
                "torch.Tensor.backward", "torch.enable_grad", "torch.set_grad_enabled"])
ATTRIBUTES = {"conv1d", "conv2d", "conv3d", "convolution", "conv2d_input", "conv2d_weight", "max_pool1d",
              "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "backward", "requires_grad_", "retain_grad"}

CONV_CASES = [((1, 1, 6, 6), (1, 3, 3), 1, 0), ((2, 3, 7, 8), (4, 3, 3), 1, 1), ((2, 2, 9, 7), (3, 2, 4), 2, 2),
              ((1, 3, 8, 8), (2, 3, 2), 3, 1)]
POOL_CASES = [((2, 3, 8, 6), 2, 2), ((1, 1, 7, 9), 3, 2), ((2, 2, 6, 7), 2, 1)]


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def conv_function_gradients(cases):
    """Conv2dFunction.apply(x, w, b, stride, padding), then backward with dout: the output and the three gradients."""
    import torch

    results = []
    for x, w, b, stride, padding, dout in cases:
        leaves = [t.clone().requires_grad_(True) for t in (x, w, b)]
        out = Conv2dFunction.apply(*leaves, stride, padding)
        out.backward(dout)
        results.append({"out": out.detach(), "grads": [leaf.grad for leaf in leaves]})
    return results


def pool_function_gradients(cases):
    """MaxPool2dFunction.apply(x, kernel, stride), then backward with dout: the output and the gradient."""
    results = []
    for x, kernel, stride, dout in cases:
        leaf = x.clone().requires_grad_(True)
        out = MaxPool2dFunction.apply(leaf, kernel, stride)
        out.backward(dout)
        results.append({"out": out.detach(), "grad": leaf.grad})
    return results


# --- helpers on the trusted side -------------------------------------------------------------------------------

def conv_cases(seed):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for (N, C, H, W), (F_, KH, KW), stride, padding in CONV_CASES:
        x, w, b = (torch.randn(shape, generator=g, dtype=torch.float64) for shape in ((N, C, H, W), (F_, C, KH, KW),
                                                                                     (F_,)))
        out_shape = F.conv2d(x, w, b, stride=stride, padding=padding).shape
        cases.append((x, w, b, stride, padding, torch.randn(out_shape, generator=g, dtype=torch.float64)))
    return cases


def pool_cases(seed):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for shape, kernel, stride in POOL_CASES:
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        out_shape = F.max_pool2d(x, kernel, stride).shape
        cases.append((x, kernel, stride, torch.randn(out_shape, generator=g, dtype=torch.float64)))
    return cases


def check_result(result, keys, where):
    assert isinstance(result, dict) and all(k in result for k in keys), f"no result came back for {where}."


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_conv2d_function_output_and_gradients_match_autograd(student):
    """Conv2dFunction.apply gives F.conv2d's output, and backward gives autograd's gradients for x, w and b"""
    cases = conv_cases(1)
    for case, result in zip(cases, student.run(conv_function_gradients, cases)):
        x, w, b, stride, padding, dout = case
        where = f"x {tuple(x.shape)}, w {tuple(w.shape)}, stride {stride}, padding {padding}"
        check_result(result, ("out", "grads"), where)
        leaves = [t.clone().requires_grad_(True) for t in (x, w, b)]
        out = F.conv2d(*leaves, stride=stride, padding=padding)
        out.backward(dout)
        expect_close(result["out"], out.detach(), name=f"Conv2dFunction.apply for {where}",
                     hint="forward returns conv2d(x, w, b, stride, padding).")
        grads = result["grads"]
        assert isinstance(grads, list) and len(grads) == 3, f"the gradients for {where} did not come back."
        for name, got, leaf in zip(("x", "w", "b"), grads, leaves):
            assert got is not None, (
                f"after backward, the gradient for {name} is None ({where}): backward must return (dx, dw, db, None, "
                "None), one entry per input of forward, in order.")
            expect_close(got, leaf.grad, name=f"the gradient for {name}, {where}",
                         hint="backward returns conv2d_backward(dout, (x, w, b, stride, padding)) for x, w and b, "
                              "with x, w and b saved in forward (ctx.save_for_backward), then None, None.")


@points(1)
def test_maxpool2d_function_output_and_gradient_match_autograd(student):
    """MaxPool2dFunction.apply gives F.max_pool2d's output, and backward gives autograd's gradient for x"""
    cases = pool_cases(2)
    for case, result in zip(cases, student.run(pool_function_gradients, cases)):
        x, kernel, stride, dout = case
        where = f"x {tuple(x.shape)}, kernel {kernel}, stride {stride}"
        check_result(result, ("out", "grad"), where)
        leaf = x.clone().requires_grad_(True)
        out = F.max_pool2d(leaf, kernel, stride)
        out.backward(dout)
        expect_close(result["out"], out.detach(), name=f"MaxPool2dFunction.apply for {where}",
                     hint="forward returns maxpool2d(x, kernel, stride).")
        assert result["grad"] is not None, (
            f"after backward, the gradient for x is None ({where}): backward must return (dx, None, None).")
        expect_close(result["grad"], leaf.grad, name=f"the gradient for x, {where}",
                     hint="backward returns maxpool2d_backward(dout, x, kernel, stride), with x saved in forward, "
                          "then None, None.")


@points(1)
@requires("test_conv2d_function_output_and_gradients_match_autograd",
          "test_maxpool2d_function_output_and_gradient_match_autograd")
def test_autograd_functions_run_your_forward_and_backward_passes(student):
    """the autograd functions call your conv2d/conv2d_backward and maxpool2d/maxpool2d_backward, nothing ready-made"""
    for name, parts in (("Conv2dFunction", ("conv2d", "conv2d_backward")),
                        ("MaxPool2dFunction", ("maxpool2d", "maxpool2d_backward"))):
        missing = [part for part in parts if part not in student.reach(name).globals_used]
        assert not missing, (
            f"{name} does not use your {' and '.join(missing)}: its forward should call {parts[0]} and its backward "
            f"{parts[1]}, so that training runs the functions you wrote (instead of autograd or a copy).")
        try:
            expect_implemented_without(student, name, FORBIDDEN, attributes=ATTRIBUTES)
        except AssertionError as error:
            raise AssertionError(f"{error} The gradients come from your own backward functions.") from None
