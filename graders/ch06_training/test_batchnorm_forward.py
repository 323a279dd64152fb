"""Hidden tests for batchnorm_forward (Chapter 6, section 1.1).

Every value is compared with PyTorch's batch normalization (torch.nn.functional.batch_norm and the
torch.nn.BatchNorm1d / BatchNorm2d modules), computed here in float64 on the grader's own inputs: the output in
training and eval mode, the running statistics after ten steps, and the cache the contract states. The bounds that
are not default tolerances are explained in THRESHOLDS.md.
"""
import torch

from dlvision.grading import (expect_close, expect_implemented_without, expect_keeps_device, points, requires,
                              speed_ratio)

#: float32 tolerance (see THRESHOLDS.md): correct float32 implementations (PyTorch's own, and E[x^2] - E[x]^2 with
#: rsqrt) use at most 6% of it on these inputs; the convention mistakes are judged in float64 at the default 1e-7.
FLOAT32 = {"rtol": 1e-4, "atol": 1e-4}
FEATURE_SHAPES = [(2, 1), (3, 4), (16, 7), (50, 3)]
IMAGE_SHAPES = [(1, 3, 4, 5), (2, 1, 3, 3), (4, 6, 5, 3), (8, 16, 2, 2), (3, 5, 1, 2)]

TRAINING_HINT = ("In training mode: the mean and the biased variance (divide by n) of each channel, over every axis "
                 "but axis 1; x_hat = (x - mean) / sqrt(var + eps), the eps inside the square root; "
                 "out = gamma * x_hat + beta.")
IMAGE_HINT = ("For (N, C, H, W) the statistics of channel c are over all N * H * W values of that channel: reduce "
              "over dims (0, 2, 3), and reshape (C,) tensors to (1, C, 1, 1) to broadcast them.")
RUNNING_HINT = ("PyTorch's convention: new = (1 - momentum) * running + momentum * batch_statistic, and the running "
                "variance is the unbiased one, var * n / (n - 1), while the output is normalised with the biased var.")
EVAL_HINT = ("In eval mode normalise with running_mean and running_var (not the batch's statistics), and return the "
             "running statistics with their values unchanged.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def running_history(batches, momentum, eps):
    """Ten training steps, each fed the running statistics the previous one returned (starting at 0 and 1)."""
    import torch

    C, dtype = batches[0].shape[1], batches[0].dtype
    rm, rv = torch.zeros(C, dtype=dtype), torch.ones(C, dtype=dtype)
    history = []
    for x in batches:
        result = batchnorm_forward(x, torch.ones(C, dtype=dtype), torch.zeros(C, dtype=dtype), rm, rv, True,
                                   momentum=momentum, eps=eps)
        if not isinstance(result, (tuple, list)) or len(result) != 4:
            return {"returned": type(result).__name__, "history": history}
        rm, rv = result[1], result[2]
        history.append([t.clone() if isinstance(t, torch.Tensor) else t for t in (rm, rv)])
    return {"returned": "tuple", "history": history}


def arguments_after_call(x, gamma, beta, rm, rv, training):
    """The arguments as they are after one call (x requiring gradients), and whether the new statistics do."""
    import torch

    leaf = x.clone().requires_grad_(True)
    result = batchnorm_forward(leaf, gamma, beta, rm, rv, training)
    grads = [t.requires_grad if isinstance(t, torch.Tensor) else None for t in list(result)[1:3]] \
        if isinstance(result, (tuple, list)) and len(result) == 4 else None
    return {"x": leaf.detach(), "gamma": gamma, "beta": beta, "rm": rm, "rv": rv, "requires_grad": grads}


# --- helpers on the trusted side -------------------------------------------------------------------------------

def draw(g, shape, dtype=torch.float64):
    """x with a different mean and spread per channel; gamma, beta, running_mean, running_var of shape (C,)."""
    C = shape[1]
    per_channel = [1, C] + [1] * (len(shape) - 2)
    scale = (torch.rand(C, generator=g, dtype=torch.float64) * 1.5 + 0.5).reshape(per_channel)
    offset = (torch.randn(C, generator=g, dtype=torch.float64) * 2).reshape(per_channel)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * scale + offset
    gamma = torch.rand(C, generator=g, dtype=torch.float64) * 1.5 + 0.25
    beta = torch.randn(C, generator=g, dtype=torch.float64)
    rm = torch.randn(C, generator=g, dtype=torch.float64)
    rv = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
    return [t.to(dtype) for t in (x, gamma, beta, rm, rv)]


def reference(x, gamma, beta, rm, rv, training, momentum=0.1, eps=1e-5):
    """PyTorch's batch_norm in float64: (out, new running mean, new running var)."""
    rm, rv = rm.double().clone(), rv.double().clone()
    out = torch.nn.functional.batch_norm(x.double(), rm, rv, gamma.double(), beta.double(), training, momentum, eps)
    return out, rm, rv


def describe(value):
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


def unpack(got, label):
    assert isinstance(got, (tuple, list)) and len(got) == 4, (
        f"{label}: batchnorm_forward should return 4 values (out, new_running_mean, new_running_var, cache), got "
        f"{describe(got)}.")
    for name, value in zip(("out", "new_running_mean", "new_running_var"), got):
        assert isinstance(value, torch.Tensor), f"{label}: {name} should be a tensor, got {type(value).__name__}."
    return got


def tolerance(dtype):
    return FLOAT32 if dtype == torch.float32 else {}


def check_training(student, shapes, seed, hint):
    g = torch.Generator().manual_seed(seed)
    for dtype in (torch.float64, torch.float32):
        for shape in shapes:
            x, gamma, beta, rm, rv = draw(g, shape, dtype)
            label = f"batchnorm_forward(x of shape {shape}, {str(dtype)[6:]}, training=True)"
            out, *_ = unpack(student.batchnorm_forward(x, gamma, beta, rm, rv, True), label)
            expected, *_ = reference(x, gamma, beta, rm, rv, True)
            expect_close(out, expected.to(dtype), name=f"out of {label}", hint=hint, **tolerance(dtype))


def speed_inputs(generator):
    """A batch of 8 images of 512 channels of 2 x 2: many channels, few values each, so that a Python loop over the
    channels pays its overhead 512 times."""
    import torch

    C = 512
    x = torch.randn(8, C, 2, 2, generator=generator) * 2 + 1
    gamma, beta = torch.rand(C, generator=generator) + 0.5, torch.randn(C, generator=generator)
    return (x, gamma, beta, torch.zeros(C), torch.ones(C), True), {}


def reference_with_cache(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """The speed test's reference: every output of the contract, the cache included, vectorised with torch."""
    dims, shape = (0, 2, 3), (1, -1, 1, 1)
    n = x.numel() // x.shape[1]
    mean = x.mean(dim=dims)
    centred = x - mean.reshape(shape)
    var = (centred * centred).mean(dim=dims)
    inv_std = torch.rsqrt(var + eps)
    x_hat = centred * inv_std.reshape(shape)
    return (x_hat * gamma.reshape(shape) + beta.reshape(shape), (1 - momentum) * running_mean + momentum * mean,
            (1 - momentum) * running_var + momentum * var * (n / (n - 1)), (x_hat, gamma, inv_std))


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_batchnorm_forward_training_matches_torch_on_feature_batches(student):
    """in training mode, out matches PyTorch's batch_norm on (N, D) batches (N down to 2, D down to 1)"""
    check_training(student, FEATURE_SHAPES, 1, TRAINING_HINT)


@points(2)
def test_batchnorm_forward_training_matches_torch_on_image_batches(student):
    """in training mode, out matches PyTorch's batch_norm on (N, C, H, W) batches, one image or one channel too"""
    check_training(student, IMAGE_SHAPES, 2, IMAGE_HINT)


@points(2)
def test_running_statistics_follow_pytorch_for_10_steps(student):
    """the running mean and (unbiased) running variance equal torch.nn.BatchNorm1d/2d's after each of 10 steps"""
    g = torch.Generator().manual_seed(3)
    for shape, momentum, eps in (((4, 3), 0.1, 1e-5), ((2, 3, 2, 3), 0.3, 1e-3), ((3, 2), 1.0, 1e-5),
                                 ((6, 2, 1, 1), 0.05, 1e-5)):
        batches = [draw(g, shape)[0] for _ in range(10)]
        got = student.run(running_history, batches, momentum, eps)
        assert got["returned"] == "tuple", (f"batchnorm_forward should return 4 values (out, new_running_mean, "
                                            f"new_running_var, cache), got {got['returned']}.")
        module = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(
            shape[1], eps=eps, momentum=momentum, affine=False).double()
        for step, (x, (rm, rv)) in enumerate(zip(batches, got["history"]), start=1):
            module(x)
            label = f"x of shape {shape}, momentum {momentum}: the new running"
            expect_close(rm, module.running_mean, name=f"{label} mean after step {step}", hint=RUNNING_HINT)
            expect_close(rv, module.running_var, name=f"{label} var after step {step}", hint=RUNNING_HINT)


@points(1)
def test_eval_mode_normalises_with_the_running_statistics(student):
    """in eval mode, out matches PyTorch's batch_norm with the running statistics, which come back unchanged"""
    g = torch.Generator().manual_seed(4)
    for dtype in (torch.float64, torch.float32):
        for shape in ((5, 3), (1, 4), (2, 3, 4, 4), (1, 2, 3, 3)):
            x, gamma, beta, rm, rv = draw(g, shape, dtype)
            label = f"batchnorm_forward(x of shape {shape}, {str(dtype)[6:]}, training=False)"
            out, new_rm, new_rv, _ = unpack(student.batchnorm_forward(x, gamma, beta, rm, rv, False), label)
            expected, *_ = reference(x, gamma, beta, rm, rv, False)
            expect_close(out, expected.to(dtype), name=f"out of {label}", hint=EVAL_HINT, **tolerance(dtype))
            expect_close(new_rm, rm, name=f"the running mean returned by {label}", hint=EVAL_HINT)
            expect_close(new_rv, rv, name=f"the running variance returned by {label}", hint=EVAL_HINT)


@points(1)
def test_cache_is_x_hat_gamma_and_inv_std(student):
    """cache = (x_hat, gamma, 1 / sqrt(var + eps)), with the batch's biased variance, or running_var in eval mode"""
    g = torch.Generator().manual_seed(5)
    for shape, training in (((6, 3), True), ((2, 4, 3, 5), True), ((3, 2, 2, 2), False)):
        x, gamma, beta, rm, rv = draw(g, shape)
        eps = 1e-3
        label = f"the cache of batchnorm_forward(x of shape {shape}, training={training}, eps={eps})"
        *_, cache = unpack(student.batchnorm_forward(x, gamma, beta, rm, rv, training, 0.1, eps), label)
        assert isinstance(cache, (tuple, list)) and len(cache) == 3, (
            f"{label} should be a tuple of 3 tensors (x_hat, gamma, inv_std), got {describe(cache)}.")
        dims, per_channel = [0] + list(range(2, x.dim())), [1, -1] + [1] * (x.dim() - 2)
        var, mean = torch.var_mean(x, dim=dims, correction=0) if training else (rv, rm)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean.reshape(per_channel)) * inv_std.reshape(per_channel)
        for name, got, expected in zip(("x_hat", "gamma", "inv_std"), cache, (x_hat, gamma, inv_std)):
            expect_close(got, expected, name=f"{name} in {label}",
                         hint="cache = (x_hat, gamma, inv_std), inv_std = 1 / sqrt(var + eps) of shape (C,), var the "
                              "variance used to normalise (the batch's biased one, or running_var in eval mode).")


@points(1)
@requires("test_running_statistics_follow_pytorch_for_10_steps")
def test_running_statistics_come_back_as_new_tensors(student):
    """batchnorm_forward leaves its arguments unchanged; the new running statistics do not require gradients"""
    g = torch.Generator().manual_seed(6)
    for shape, training in (((5, 3), True), ((2, 3, 2, 2), True), ((4, 2), False)):
        x, gamma, beta, rm, rv = draw(g, shape)
        got = student.run(arguments_after_call, x, gamma, beta, rm, rv, training)
        for name, before in (("x", x), ("gamma", gamma), ("beta", beta), ("running_mean", rm), ("running_var", rv)):
            after = got["rm" if name == "running_mean" else "rv" if name == "running_var" else name]
            assert isinstance(after, torch.Tensor) and torch.equal(after, before), (
                f"batchnorm_forward(training={training}) changed its argument {name}: return new running statistics "
                "and leave the tensors passed in as they were (no in-place updates such as running_mean.mul_(...), "
                "running_mean[:] = ... or copy_).")
        assert got["requires_grad"] == [False, False], (
            f"with x requiring gradients, the new running statistics should not require gradients (got "
            f"requires_grad {got['requires_grad']}): compute them from mean.detach() and var.detach(), so that no "
            "graph is kept alive in the running statistics from one step to the next.")


@points(1)
@requires("test_batchnorm_forward_training_matches_torch_on_feature_batches")
def test_batchnorm_forward_is_implemented_by_hand(student):
    """batchnorm_forward does not use torch.nn (functional included) or a ready-made normalisation"""
    x, gamma, beta, rm, rv = draw(torch.Generator().manual_seed(7), (4, 3, 2, 2))
    try:
        expect_implemented_without(
            student, "batchnorm_forward",
            ["torch.nn", "torch.batch_norm", "torch.native_batch_norm", "torch.instance_norm", "torch.layer_norm",
             "torch.group_norm", "torch.batch_norm_stats", "torch.batch_norm_elemt", "torch.batch_norm_update_stats",
             "torch.cudnn_batch_norm", "torch.miopen_batch_norm", "torch.native_layer_norm",
             "torch.native_group_norm"],
            attributes={"batch_norm", "native_batch_norm", "instance_norm", "layer_norm", "group_norm",
                        "batch_norm_stats", "batch_norm_elemt", "batch_norm_update_stats"},
            calling=((x, gamma, beta, rm, rv, True), {}))
    except AssertionError as error:
        raise AssertionError(f"{error} Compute the statistics with mean / var (or sums) and normalise with tensor "
                             "arithmetic yourself.") from None


#: The speed bound (see THRESHOLDS.md): vectorised answers measured at 1.7 to 8.4 times the reference on a loaded
#: 2-core machine, a loop over the 512 channels at 32 or more.
SPEED_BOUND = 16


@points(1)
@requires("test_batchnorm_forward_training_matches_torch_on_image_batches")
def test_batchnorm_forward_is_vectorised(student):
    """batchnorm_forward on 8 x 512 x 2 x 2 runs within 16x a vectorised reference (no Python loop over channels)"""
    ratio = speed_ratio(student, "batchnorm_forward", reference_with_cache, speed_inputs, rtol=1e-4, atol=1e-4,
                        repeats=3, min_seconds=0.1)
    assert ratio < SPEED_BOUND, (
        f"batchnorm_forward took {ratio:.0f} times as long as a vectorised reference on a batch of 8 images of 512 "
        f"channels of 2 x 2 (allowed: {SPEED_BOUND} times). A Python loop over the channels (or the samples) runs "
        "many small operations; compute every channel's statistics at once with x.mean(dim=(0, 2, 3)) and "
        "broadcast (C,) tensors reshaped to (1, C, 1, 1).")


@points(1)
@requires("test_batchnorm_forward_training_matches_torch_on_image_batches")
def test_batchnorm_forward_keeps_the_device_of_its_input(student):
    """with every tensor argument on a CUDA device, batchnorm_forward makes nothing on the CPU"""
    x, gamma, beta, rm, rv = draw(torch.Generator().manual_seed(8), (3, 4, 2, 3), torch.float32)
    hint = ("Make every new tensor on x.device (torch.zeros(C, device=x.device), or x.new_zeros(C)); Python numbers "
            "such as n / (n - 1) need no device.")
    for training in (True, False):
        expect_keeps_device(student, "batchnorm_forward", x, gamma, beta, rm, rv, training, hint=hint)
