"""Hidden tests for VGGBlock (Chapter 5, section 2).

The grader finds the block's convolutions, in order, among the torch.nn.Conv2d modules of block.modules() (as
the docstring states), gives them weights drawn here, in float64, and compares the block's output and gradients
with the stated block computed here with torch.nn.functional from the same tensors, and autograd through it.
"""
import torch
import torch.nn.functional as F

from dlvision.grading import expect_close, points, requires

HINT = ("num_convs times (3x3 convolution with padding 1, ReLU), the first from in_ch to out_ch channels and the "
        "others from out_ch to out_ch, then one 2x2 max pooling with stride 2 at the end.")

#: (in_ch, out_ch, num_convs, input shape): one channel, odd sizes, a batch of one, a 2x2 image.
CASES = [(1, 4, 1, (1, 1, 8, 8)), (3, 5, 2, (2, 3, 7, 9)), (2, 2, 3, (3, 2, 6, 5)), (4, 3, 2, (1, 4, 2, 3))]


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def vgg_run(in_ch, out_ch, num_convs, weights, x, upstream):
    """VGGBlock in float64 with the grader's (weight, bias) in its Conv2d modules, in order: its output for x and
    the gradients of sum(output * upstream). Only the convolutions' shapes if they are not the grader's."""
    import torch

    block = VGGBlock(in_ch, out_ch, num_convs).double()
    convs = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
    found = [[list(m.weight.shape), None if m.bias is None else list(m.bias.shape)] for m in convs]
    if found != [[list(w.shape), list(b.shape)] for w, b in weights]:
        return {"found": found}
    with torch.no_grad():
        for m, (w, b) in zip(convs, weights):
            m.weight.copy_(w)
            m.bias.copy_(b)
    x = x.clone().requires_grad_(True)
    out = block(x)
    result = {"found": found, "out": out}
    if isinstance(out, torch.Tensor) and out.shape == upstream.shape and out.requires_grad:
        out.backward(upstream)
        result.update(x_grad=x.grad, grads=[[m.weight.grad, m.bias.grad] for m in convs])
    return result


def vgg_parameter_count(in_ch, out_ch, num_convs):
    """The numbers in VGGBlock(in_ch, out_ch, num_convs).parameters()."""
    return sum(p.numel() for p in VGGBlock(in_ch, out_ch, num_convs).parameters())


# --- helpers on the trusted side -------------------------------------------------------------------------------

def random_weights(in_ch, out_ch, num_convs, g):
    weights = []
    for k in range(num_convs):
        c_in = in_ch if k == 0 else out_ch
        scale = 1.5 / (9 * c_in) ** 0.5
        weights.append((torch.randn(out_ch, c_in, 3, 3, generator=g, dtype=torch.float64) * scale,
                        torch.randn(out_ch, generator=g, dtype=torch.float64) * scale))
    return weights


def reference(weights, x):
    for w, b in weights:
        x = F.relu(F.conv2d(x, w, b, padding=1))
    return F.max_pool2d(x, 2, 2)


def run_cases(student, cases):
    g = torch.Generator().manual_seed(11)
    for in_ch, out_ch, num_convs, shape in cases:
        weights = random_weights(in_ch, out_ch, num_convs, g)
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        upstream = torch.randn(shape[0], out_ch, shape[2] // 2, shape[3] // 2, generator=g, dtype=torch.float64)
        got = student.run(vgg_run, in_ch, out_ch, num_convs, weights, x, upstream)
        expected = [[[out_ch, in_ch if k == 0 else out_ch, 3, 3], [out_ch]] for k in range(num_convs)]
        if got["found"] != expected:
            found = ", ".join(f"{tuple(w)}" + (" without bias" if b is None else "") for w, b in got["found"])
            raise AssertionError(
                f"VGGBlock({in_ch}, {out_ch}, {num_convs}) should hold {num_convs} torch.nn.Conv2d modules with "
                f"biases, in the order they are applied, with weights of shapes "
                f"{', '.join(str(tuple(w)) for w, _ in expected)}; block.modules() has {found or 'none'}. "
                "The first convolution maps in_ch to out_ch channels, the others out_ch to out_ch.")
        yield (in_ch, out_ch, num_convs), weights, x, upstream, got


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_vgg_block_forward_is_3x3_convolutions_then_max_pooling(student):
    """VGGBlock(x) is num_convs (3x3 conv, padding 1, ReLU), then 2x2 max pooling, for odd sizes and a batch of 1"""
    for args, weights, x, _, got in run_cases(student, CASES):
        expect_close(got["out"], reference(weights, x),
                     name=f"VGGBlock{args}(x) for x of shape {tuple(x.shape)}", hint=HINT)


@points(1)
def test_vgg_block_gradients_match_autograd(student):
    """backward through VGGBlock gives the gradients of every convolution and of the input that autograd gives"""
    for args, weights, x, upstream, got in run_cases(student, CASES[1:3]):
        leaves = [(w.clone().requires_grad_(True), b.clone().requires_grad_(True)) for w, b in weights]
        x_leaf = x.clone().requires_grad_(True)
        reference(leaves, x_leaf).backward(upstream)
        assert "grads" in got, (f"VGGBlock{args}(x) gave no output that gradients flow through: use the layers' "
                                "outputs directly, without .detach() or torch.no_grad().")
        expect_close(got["x_grad"], x_leaf.grad, name=f"the gradient with respect to x (VGGBlock{args})", hint=HINT)
        for k, ((w_grad, b_grad), (w, b)) in enumerate(zip(got["grads"], leaves)):
            expect_close(w_grad, w.grad, name=f"convolution {k}'s weight.grad (VGGBlock{args})", hint=HINT)
            expect_close(b_grad, b.grad, name=f"convolution {k}'s bias.grad (VGGBlock{args})", hint=HINT)


@points(1)
@requires("test_vgg_block_forward_is_3x3_convolutions_then_max_pooling")
def test_vgg_block_parameter_counts(student):
    """VGG-16's first three blocks have 38,720, 221,440 and 1,475,328 parameters, and nothing more"""
    for in_ch, out_ch, num_convs in ((3, 64, 2), (64, 128, 2), (128, 256, 3)):
        expected = sum(out_ch * (9 * (in_ch if k == 0 else out_ch) + 1) for k in range(num_convs))
        got = student.run(vgg_parameter_count, in_ch, out_ch, num_convs)
        assert got == expected, (
            f"VGGBlock({in_ch}, {out_ch}, {num_convs}) has {got:,} parameters; its {num_convs} 3x3 convolutions "
            f"with biases have {expected:,}. A VGG block has no other parameters (no BatchNorm, no linear layer).")
