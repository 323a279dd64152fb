"""Hidden tests for batchnorm_backward (Chapter 6, section 1.2).

The grader builds the cache (x_hat, gamma, inv_std) itself, from its own x, exactly as the contract states, and
compares dx, dgamma and dbeta with autograd through torch.nn.functional.batch_norm in float64: the student's
forward pass plays no part, except in the one test that checks that the two passes fit together. The bounds that
are not default tolerances are explained in THRESHOLDS.md.
"""
import torch

from dlvision.grading import (expect_close, expect_implemented_without, expect_keeps_device, points, requires,
                              speed_ratio)

FEATURE_SHAPES = [(2, 1), (3, 4), (16, 7), (50, 3)]
IMAGE_SHAPES = [(1, 3, 4, 5), (2, 1, 3, 3), (4, 6, 5, 3), (8, 16, 2, 2), (3, 5, 1, 2)]
#: dx cancels (n dout - sum(dout) - x_hat sum(dout x_hat)), so its small entries are judged against the scale of the
#: whole gradient: atol = ATOL_SCALE[dtype] * max |dx| (see THRESHOLDS.md).
ATOL_SCALE = {torch.float64: 1e-10, torch.float32: 1e-4}
RTOL = {torch.float64: 1e-7, torch.float32: 1e-4}

FORMULA_HINT = ("dbeta = sum(dout), dgamma = sum(dout * x_hat), dx = gamma * inv_std / n * (n * dout - dbeta - "
                "x_hat * dgamma), the sums over every axis but 1 and n the number of values per channel.")
IMAGE_HINT = ("For (N, C, H, W) sum over dims (0, 2, 3), take n = N * H * W, and reshape the (C,) tensors to "
              "(1, C, 1, 1) to broadcast them.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def forward_then_backward(x, gamma, beta, dout):
    """The student's own forward pass (training mode), its cache handed to the student's backward pass."""
    import torch

    C = x.shape[1]
    result = batchnorm_forward(x, gamma, beta, torch.zeros(C, dtype=x.dtype), torch.ones(C, dtype=x.dtype), True)
    return batchnorm_backward(dout, result[3])


# --- helpers on the trusted side -------------------------------------------------------------------------------

def draw(g, shape, dtype=torch.float64):
    """x (a different mean and spread per channel), gamma, beta and an upstream gradient dout."""
    C = shape[1]
    per_channel = [1, C] + [1] * (len(shape) - 2)
    scale = (torch.rand(C, generator=g, dtype=torch.float64) * 1.5 + 0.5).reshape(per_channel)
    offset = (torch.randn(C, generator=g, dtype=torch.float64) * 2).reshape(per_channel)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * scale + offset
    gamma = torch.rand(C, generator=g, dtype=torch.float64) * 1.5 + 0.25
    beta = torch.randn(C, generator=g, dtype=torch.float64)
    dout = torch.randn(shape, generator=g, dtype=torch.float64)
    return [t.to(dtype) for t in (x, gamma, beta, dout)]


def cache_of(x, gamma, eps=1e-5):
    """The contract's cache, computed here in float64 and cast to x's dtype: (x_hat, gamma, inv_std)."""
    xd = x.double()
    dims, per_channel = [0] + list(range(2, x.dim())), [1, -1] + [1] * (x.dim() - 2)
    var, mean = torch.var_mean(xd, dim=dims, correction=0)
    inv_std = 1 / torch.sqrt(var + eps)
    x_hat = (xd - mean.reshape(per_channel)) * inv_std.reshape(per_channel)
    return x_hat.to(x.dtype), gamma, inv_std.to(x.dtype)


def autograd_reference(x, gamma, beta, dout, eps=1e-5):
    """dx, dgamma, dbeta by autograd through PyTorch's batch_norm (training mode), in float64."""
    leaves = [t.double().clone().requires_grad_(True) for t in (x, gamma, beta)]
    out = torch.nn.functional.batch_norm(leaves[0], None, None, leaves[1], leaves[2], True, 0.1, eps)
    (out * dout.double()).sum().backward()
    return [leaf.grad for leaf in leaves]


def expect_gradients(got, expected, dtype, label, hint):
    assert isinstance(got, (tuple, list)) and len(got) == 3, (
        f"{label}: batchnorm_backward should return 3 tensors (dx, dgamma, dbeta), got "
        f"{type(got).__name__}{f' of {len(got)}' if isinstance(got, (tuple, list)) else ''}.")
    for name, mine, theirs in zip(("dx", "dgamma", "dbeta"), got, expected):
        scale = max(1.0, theirs.abs().max().item())
        expect_close(mine, theirs.to(dtype), rtol=RTOL[dtype], atol=ATOL_SCALE[dtype] * scale,
                     name=f"{name} for {label}", hint=hint)


def check_shapes(student, shapes, dtype, seed, hint):
    g = torch.Generator().manual_seed(seed)
    for shape in shapes:
        x, gamma, beta, dout = draw(g, shape, dtype)
        got = student.batchnorm_backward(dout, cache_of(x, gamma))
        expect_gradients(got, autograd_reference(x, gamma, beta, dout), dtype,
                         f"x of shape {shape}, {str(dtype)[6:]}", hint)


def speed_inputs(generator):
    """dout and the cache for 8 images of 512 channels of 2 x 2 (a loop over channels pays 512 times)."""
    import torch

    C = 512
    x = torch.randn(8, C, 2, 2, generator=generator)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    inv_std = 1 / torch.sqrt(((x - mean) ** 2).mean(dim=(0, 2, 3)) + 1e-5)
    x_hat = (x - mean) * inv_std.reshape(1, C, 1, 1)
    gamma = torch.rand(C, generator=generator) + 0.5
    return (torch.randn(8, C, 2, 2, generator=generator), (x_hat, gamma, inv_std)), {}


def reference_backward(dout, cache):
    """The speed test's reference: the simplified formula, vectorised with torch (checked against autograd above)."""
    x_hat, gamma, inv_std = cache
    n = dout.numel() // dout.shape[1]
    dbeta = dout.sum(dim=(0, 2, 3))
    dgamma = (dout * x_hat).sum(dim=(0, 2, 3))
    scale = (gamma * inv_std / n).reshape(1, -1, 1, 1)
    return scale * (n * dout - dbeta.reshape(1, -1, 1, 1) - x_hat * dgamma.reshape(1, -1, 1, 1)), dgamma, dbeta


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_batchnorm_backward_matches_autograd_on_feature_batches(student):
    """dx, dgamma and dbeta match autograd through PyTorch's batch_norm on (N, D) batches, float64"""
    check_shapes(student, FEATURE_SHAPES, torch.float64, 1, FORMULA_HINT)


@points(2)
def test_batchnorm_backward_matches_autograd_on_image_batches(student):
    """dx, dgamma and dbeta match autograd on (N, C, H, W) batches (one image, one channel, 1 x 2 images), float64"""
    check_shapes(student, IMAGE_SHAPES, torch.float64, 2, IMAGE_HINT)


@points(1)
def test_batchnorm_backward_in_float32(student):
    """in float32, dx, dgamma and dbeta are float32 and match autograd to float32 precision"""
    check_shapes(student, [(16, 7), (4, 6, 5, 3), (1, 3, 4, 5)], torch.float32, 3,
                 "Compute in the dtype of dout (no casts to float64). " + FORMULA_HINT)


@points(1)
def test_batchnorm_forward_and_backward_fit_together(student):
    """your batchnorm_backward on the cache of your batchnorm_forward gives autograd's gradients"""
    g = torch.Generator().manual_seed(4)
    for shape in ((5, 3), (2, 4, 3, 3)):
        x, gamma, beta, dout = draw(g, shape)
        got = student.run(forward_then_backward, x, gamma, beta, dout)
        expect_gradients(got, autograd_reference(x, gamma, beta, dout), torch.float64,
                         f"x of shape {shape}, through your own forward pass's cache",
                         "batchnorm_forward's cache must be (x_hat, gamma, inv_std), exactly what the backward "
                         "pass reads. " + FORMULA_HINT)


@points(1)
@requires("test_batchnorm_backward_matches_autograd_on_feature_batches")
def test_batchnorm_backward_does_not_use_autograd(student):
    """batchnorm_backward computes the gradients with the formula, without autograd or torch.nn"""
    x, gamma, beta, dout = draw(torch.Generator().manual_seed(5), (4, 3, 2, 2))
    try:
        expect_implemented_without(student, "batchnorm_backward",
                                   ["torch.autograd", "torch.func", "torch.Tensor.backward", "torch.nn",
                                    "torch.batch_norm", "torch.native_batch_norm", "torch.native_batch_norm_backward",
                                    "torch.batch_norm_backward_reduce", "torch.batch_norm_backward_elemt"],
                                   attributes={"backward", "requires_grad_", "batch_norm", "native_batch_norm_backward",
                                               "batch_norm_backward_reduce", "batch_norm_backward_elemt"},
                                   calling=((dout, cache_of(x, gamma)), {}))
    except AssertionError as error:
        raise AssertionError(f"{error} Write dx, dgamma and dbeta with the simplified formula and tensor sums.") \
            from None


#: The speed bound (see THRESHOLDS.md): vectorised answers measured at 2.2 to 5.0 times the reference on a loaded
#: 2-core machine, a loop over the 512 channels at 89 or more.
SPEED_BOUND = 16


@points(1)
@requires("test_batchnorm_backward_matches_autograd_on_image_batches")
def test_batchnorm_backward_is_vectorised(student):
    """batchnorm_backward on 8 x 512 x 2 x 2 runs within 16x a vectorised reference (no Python loop over channels)"""
    ratio = speed_ratio(student, "batchnorm_backward", reference_backward, speed_inputs, rtol=1e-4, atol=1e-3,
                        repeats=3, min_seconds=0.1)
    assert ratio < SPEED_BOUND, (
        f"batchnorm_backward took {ratio:.0f} times as long as a vectorised reference on 8 images of 512 channels of "
        f"2 x 2 (allowed: {SPEED_BOUND} times). Sum over dims (0, 2, 3) for all channels at once instead of looping "
        "over them.")


@points(1)
@requires("test_batchnorm_backward_matches_autograd_on_image_batches")
def test_batchnorm_backward_keeps_the_device_of_its_input(student):
    """with dout and the cache on a CUDA device, batchnorm_backward makes nothing on the CPU"""
    x, gamma, beta, dout = draw(torch.Generator().manual_seed(6), (3, 4, 2, 3), torch.float32)
    expect_keeps_device(student, "batchnorm_backward", dout, cache_of(x, gamma),
                        hint="Make every new tensor on dout.device; Python numbers such as n need no device.")
