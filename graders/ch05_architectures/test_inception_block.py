"""Hidden tests for InceptionBlock (Chapter 5, section 3).

The grader chooses widths for which the six convolutions have weights of six different shapes, finds each of them
among the torch.nn.Conv2d modules of block.modules() by that shape (as the docstring states), gives them weights
drawn here, in float64, and compares the block's output and gradients with the stated block computed here with
torch.nn.functional from the same tensors, and autograd through it.
"""
import torch
import torch.nn.functional as F

from dlvision.grading import expect_close, points, requires

HINT = ("Four branches on the same input, concatenated along dim=1 in the order 1x1, 3x3, 5x5, pool: "
        "[conv1x1, ReLU], [conv1x1 to c3, ReLU, conv3x3 (padding 1), ReLU], [conv1x1 to c5, ReLU, conv5x5 "
        "(padding 2), ReLU], [3x3 max pooling with stride 1 and padding 1, conv1x1 to cpool, ReLU].")

#: (in_ch, c1, c3, c5, cpool, input shape, offset added to x): odd sizes, a batch of one, a 1x1 image, and an input
#: that is mostly negative (where the pooling's padding must never win the maximum).
CASES = [((3, 4, 5, 6, 7), (2, 3, 7, 9), 0.0), ((2, 1, 3, 4, 5), (1, 2, 5, 5), 0.0),
         ((4, 2, 3, 5, 6), (2, 4, 1, 1), 0.0), ((3, 2, 4, 1, 5), (2, 3, 4, 6), -1.5)]


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def inception_run(args, weights, x, upstream):
    """InceptionBlock(*args) in float64, each Conv2d given the grader's (weight, bias) of its weight's shape: its
    output for x and the gradients of sum(output * upstream), in the grader's order. Only the convolutions' shapes
    if they are not the grader's."""
    import torch

    block = InceptionBlock(*args).double()
    convs = {tuple(m.weight.shape): m for m in block.modules() if isinstance(m, torch.nn.Conv2d)}
    found = sorted([list(m.weight.shape), [-1] if m.bias is None else list(m.bias.shape)]
                   for m in block.modules() if isinstance(m, torch.nn.Conv2d))
    if found != sorted([list(w.shape), list(b.shape)] for w, b in weights) or len(convs) != len(weights):
        return {"found": found}
    with torch.no_grad():
        for w, b in weights:
            convs[tuple(w.shape)].weight.copy_(w)
            convs[tuple(w.shape)].bias.copy_(b)
    x = x.clone().requires_grad_(True)
    out = block(x)
    result = {"found": found, "out": out}
    if isinstance(out, torch.Tensor) and out.shape == upstream.shape and out.requires_grad:
        out.backward(upstream)
        result.update(x_grad=x.grad, grads=[[convs[tuple(w.shape)].weight.grad, convs[tuple(w.shape)].bias.grad]
                                            for w, _ in weights])
    return result


def inception_parameter_count(args):
    """The numbers in InceptionBlock(*args).parameters()."""
    return sum(p.numel() for p in InceptionBlock(*args).parameters())


# --- helpers on the trusted side -------------------------------------------------------------------------------

def conv_shapes(in_ch, c1, c3, c5, cpool):
    """The six convolutions, in the grader's order: branch 1, branch 2 (1x1, 3x3), branch 3 (1x1, 5x5), branch 4."""
    return [(c1, in_ch, 1, 1), (c3, in_ch, 1, 1), (c3, c3, 3, 3), (c5, in_ch, 1, 1), (c5, c5, 5, 5), (cpool, in_ch, 1, 1)]


def random_weights(args, g):
    weights = []
    for shape in conv_shapes(*args):
        scale = 1.5 / torch.Size(shape[1:]).numel() ** 0.5
        weights.append((torch.randn(shape, generator=g, dtype=torch.float64) * scale,
                        torch.randn(shape[0], generator=g, dtype=torch.float64) * scale))
    return weights


def reference(weights, x):
    (w1, b1), (w3r, b3r), (w3, b3), (w5r, b5r), (w5, b5), (wp, bp) = weights
    branch1 = F.relu(F.conv2d(x, w1, b1))
    branch2 = F.relu(F.conv2d(F.relu(F.conv2d(x, w3r, b3r)), w3, b3, padding=1))
    branch3 = F.relu(F.conv2d(F.relu(F.conv2d(x, w5r, b5r)), w5, b5, padding=2))
    branch4 = F.relu(F.conv2d(F.max_pool2d(x, 3, stride=1, padding=1), wp, bp))
    return torch.cat([branch1, branch2, branch3, branch4], dim=1)


def run_cases(student, cases):
    g = torch.Generator().manual_seed(12)
    for args, shape, offset in cases:
        weights = random_weights(args, g)
        x = torch.randn(shape, generator=g, dtype=torch.float64) + offset
        width = args[1] + args[2] + args[3] + args[4]
        upstream = torch.randn(shape[0], width, shape[2], shape[3], generator=g, dtype=torch.float64)
        got = student.run(inception_run, list(args), weights, x, upstream)
        expected = sorted([[list(w.shape), [w.shape[0]]] for w, _ in weights])
        if got["found"] != expected:
            found = ", ".join(f"{tuple(w)}" + (" without bias" if b == [-1] else "") for w, b in got["found"])
            raise AssertionError(
                f"InceptionBlock{args} should hold six torch.nn.Conv2d modules with biases, with weights of shapes "
                f"{', '.join(str(s) for s in conv_shapes(*args))}; block.modules() has {found or 'none'}. "
                "Branch 2 is a 1x1 convolution to c3 channels then a 3x3 from c3 to c3; branch 3 the same with c5 "
                "and 5x5; branch 4 pools the input, then a 1x1 convolution maps in_ch to cpool.")
        yield args, weights, x, upstream, got


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_inception_block_forward_concatenates_the_four_branches_in_order(student):
    """InceptionBlock(x) is cat([1x1, 3x3, 5x5, pool branches], dim=1), for odd sizes, a 1x1 image, negative inputs"""
    for args, weights, x, _, got in run_cases(student, CASES):
        expect_close(got["out"], reference(weights, x),
                     name=f"InceptionBlock{args}(x) for x of shape {tuple(x.shape)}", hint=HINT)


@points(1)
def test_inception_block_gradients_match_autograd(student):
    """backward through InceptionBlock gives the gradients of all six convolutions and of the input"""
    for args, weights, x, upstream, got in run_cases(student, CASES[:2]):
        leaves = [(w.clone().requires_grad_(True), b.clone().requires_grad_(True)) for w, b in weights]
        x_leaf = x.clone().requires_grad_(True)
        reference(leaves, x_leaf).backward(upstream)
        assert "grads" in got, (f"InceptionBlock{args}(x) gave no output that gradients flow through: use the "
                                "layers' outputs directly, without .detach() or torch.no_grad().")
        expect_close(got["x_grad"], x_leaf.grad, name=f"the gradient with respect to x (InceptionBlock{args})",
                     hint=HINT)
        for shape, (w_grad, b_grad), (w, b) in zip(conv_shapes(*args), got["grads"], leaves):
            expect_close(w_grad, w.grad, name=f"weight.grad of the convolution of shape {shape}", hint=HINT)
            expect_close(b_grad, b.grad, name=f"bias.grad of the convolution of shape {shape}", hint=HINT)


@points(1)
@requires("test_inception_block_forward_concatenates_the_four_branches_in_order")
def test_inception_block_parameter_counts(student):
    """InceptionBlock(192, 64, 128, 32, 32) has 222,624 parameters (and other widths their stated count)"""
    for args in ((192, 64, 128, 32, 32), (256, 128, 192, 96, 64), (3, 4, 5, 6, 7)):
        expected = sum(s[0] * (torch.Size(s[1:]).numel() + 1) for s in conv_shapes(*args))
        got = student.run(inception_parameter_count, list(args))
        assert got == expected, (
            f"InceptionBlock{args} has {got:,} parameters; its six convolutions with biases have {expected:,}. "
            "The block has no other parameters.")
