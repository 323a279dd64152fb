"""Hidden tests for the BatchNorm2d module (Chapter 6, section 1.3).

The scenarios build the student's BatchNorm2d, give it the grader's weight and bias, run it on the grader's batches
(training steps, then eval mode) and return its raw outputs, buffers and gradients; they are compared here with
torch.nn.BatchNorm2d, run on the same batches in float64. The state-dict names (weight, bias, running_mean,
running_var) are part of the contract.
"""
import torch

from dlvision.grading import (expect_close, expect_implemented_without, expect_keeps_device, expect_on_device, gpu,
                              points, requires)

BUFFERS = ("running_mean", "running_var")
MODULE_HINT = ("In training mode normalise with the batch's statistics and store the new running statistics in "
               "self.running_mean and self.running_var; in eval mode (self.training is False) normalise with them and "
               "leave them unchanged.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def initial_state(C):
    """A fresh BatchNorm2d(C): its registered parameters, buffers and state_dict keys."""
    import torch

    bn = BatchNorm2d(C)
    return {"parameters": {k: v.detach().clone() for k, v in bn.named_parameters()},
            "buffers": {k: v.clone() for k, v in bn.named_buffers()},
            "state_dict": sorted(bn.state_dict().keys()), "module": isinstance(bn, torch.nn.Module)}


def train_then_eval(C, eps, momentum, weight, bias, batches, eval_batches):
    """BatchNorm2d(C, eps, momentum).double() (BatchNorm2d(C), with the signature's defaults, if eps is None) with the
    grader's weight and bias: its outputs and running statistics (attributes) after each training step, then its outputs in eval mode and the statistics after them."""
    import torch

    bn = (BatchNorm2d(C) if eps is None else BatchNorm2d(C, eps=eps, momentum=momentum)).double()
    with torch.no_grad():
        bn.weight.copy_(weight)
        bn.bias.copy_(bias)
    bn.train()
    outputs, history = [], []
    for x in batches:
        outputs.append(bn(x).detach().clone())
        history.append([bn.running_mean.detach().clone(), bn.running_var.detach().clone()])
    bn.eval()
    evaluated = [bn(x).detach().clone() for x in eval_batches]
    return {"outputs": outputs, "history": history, "eval": evaluated,
            "after_eval": [bn.running_mean.detach().clone(), bn.running_var.detach().clone()]}


def gradients(C, weight, bias, running_mean, running_var, x, upstream, training):
    """x.grad, weight.grad and bias.grad after backward() through BatchNorm2d(C).double() in the given mode."""
    import torch

    bn = BatchNorm2d(C).double()
    with torch.no_grad():
        bn.weight.copy_(weight)
        bn.bias.copy_(bias)
        bn.running_mean.copy_(running_mean)
        bn.running_var.copy_(running_var)
    bn.train(training)
    leaf = x.clone().requires_grad_(True)
    out = bn(leaf)
    if isinstance(out, torch.Tensor) and out.requires_grad:
        (out * upstream).sum().backward()
    return {"x": leaf.grad, "weight": bn.weight.grad, "bias": bn.bias.grad}


def module_on_device(x, weight, bias, device):
    """BatchNorm2d moved to the device of the test (unless it is the CPU): a training step, then an eval step."""
    import torch

    bn = BatchNorm2d(x.shape[1])
    if device != "cpu":
        bn = bn.to(device)
    with torch.no_grad():
        bn.weight.copy_(weight)
        bn.bias.copy_(bias)
    out = bn(x)
    bn.eval()
    return [out, bn(x), bn.running_mean, bn.running_var]


def module_on_cuda(x, weight, bias):
    """The same on a real GPU: the module moved to x's device."""
    import torch

    bn = BatchNorm2d(x.shape[1]).to(x.device)
    with torch.no_grad():
        bn.weight.copy_(weight)
        bn.bias.copy_(bias)
    out = bn(x)
    bn.eval()
    return [out, bn(x), bn.running_mean, bn.running_var]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def draw_batch(g, shape):
    C = shape[1]
    scale = (torch.rand(C, generator=g, dtype=torch.float64) * 1.5 + 0.5).reshape(1, C, 1, 1)
    offset = (torch.randn(C, generator=g, dtype=torch.float64) * 2).reshape(1, C, 1, 1)
    return torch.randn(shape, generator=g, dtype=torch.float64) * scale + offset


def affine(g, C):
    return (torch.rand(C, generator=g, dtype=torch.float64) * 1.5 + 0.25,
            torch.randn(C, generator=g, dtype=torch.float64))


def torch_module(C, weight, bias, eps=1e-5, momentum=0.1):
    module = torch.nn.BatchNorm2d(C, eps=eps, momentum=momentum).double()
    with torch.no_grad():
        module.weight.copy_(weight)
        module.bias.copy_(bias)
    return module


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_batchnorm2d_training_steps_match_torch(student):
    """in training mode, outputs and running buffers equal torch.nn.BatchNorm2d's after each of 10 steps (explicit eps
    and momentum, and the defaults eps=1e-5, momentum=0.1)"""
    g = torch.Generator().manual_seed(1)
    for C, shape, eps, momentum in ((3, (4, 3, 5, 6), 1e-5, 0.1), (2, (2, 2, 3, 3), 1e-3, 0.3),
                                    (1, (1, 1, 4, 4), 1e-5, 0.1), (2, (3, 2, 2, 3), None, None)):
        weight, bias = affine(g, C)
        batches = [draw_batch(g, shape) for _ in range(10)]
        got = student.run(train_then_eval, C, eps, momentum, weight, bias, batches, [])
        if eps is None:  # the signature's defaults, torch's: eps=1e-5, momentum=0.1
            reference = torch_module(C, weight, bias)
            label = f"BatchNorm2d({C}) (default eps=1e-5, momentum=0.1) on batches of shape {shape}"
        else:
            reference = torch_module(C, weight, bias, eps, momentum)
            label = f"BatchNorm2d({C}, eps={eps}, momentum={momentum}) on batches of shape {shape}"
        for step, (x, out, stats) in enumerate(zip(batches, got["outputs"], got["history"]), start=1):
            expected = reference(x).detach()
            expect_close(out, expected, name=f"{label}: the output at training step {step}", hint=MODULE_HINT)
            for name, value in zip(BUFFERS, stats):
                expect_close(value, getattr(reference, name), name=f"{label}: {name} after step {step}",
                             hint="new = (1 - momentum) * running + momentum * batch statistic, the variance "
                                  "unbiased; store it in the buffer after every training step.")


@points(1)
def test_batchnorm2d_eval_mode_uses_the_running_buffers(student):
    """after 5 training steps, .eval() normalises with the running buffers (a batch of one too) and keeps them"""
    g = torch.Generator().manual_seed(2)
    C = 4
    weight, bias = affine(g, C)
    batches = [draw_batch(g, (3, C, 4, 5)) for _ in range(5)]
    eval_batches = [draw_batch(g, (2, C, 3, 3)), draw_batch(g, (1, C, 2, 5))]
    got = student.run(train_then_eval, C, 1e-5, 0.2, weight, bias, batches, eval_batches)
    reference = torch_module(C, weight, bias, momentum=0.2)
    for x in batches:
        reference(x)
    reference.eval()
    for x, out in zip(eval_batches, got["eval"]):
        expect_close(out, reference(x).detach(), name=f"BatchNorm2d({C}) in eval mode on a batch of shape "
                                                       f"{tuple(x.shape)}", hint=MODULE_HINT)
    for name, value in zip(BUFFERS, got["after_eval"]):
        expect_close(value, getattr(reference, name), name=f"{name} after the eval-mode calls",
                     hint="Eval mode must not change the running statistics.")


@points(2)
def test_batchnorm2d_gradients_match_torch(student):
    """x.grad, weight.grad and bias.grad equal torch.nn.BatchNorm2d's, in training mode and in eval mode"""
    g = torch.Generator().manual_seed(3)
    for training, shape in ((True, (4, 3, 3, 5)), (True, (1, 2, 2, 3)), (False, (3, 3, 2, 2))):
        C = shape[1]
        weight, bias = affine(g, C)
        running_mean = torch.randn(C, generator=g, dtype=torch.float64)
        running_var = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
        x, upstream = draw_batch(g, shape), torch.randn(shape, generator=g, dtype=torch.float64)
        got = student.run(gradients, C, weight, bias, running_mean, running_var, x, upstream, training)
        reference = torch_module(C, weight, bias)
        with torch.no_grad():
            reference.running_mean.copy_(running_mean)
            reference.running_var.copy_(running_var)
        reference.train(training)
        leaf = x.clone().requires_grad_(True)
        (reference(leaf) * upstream).sum().backward()
        mode = "training" if training else "eval"
        for name, expected in (("x", leaf.grad), ("weight", reference.weight.grad), ("bias", reference.bias.grad)):
            assert got[name] is not None, (
                f"after backward() in {mode} mode, {name}.grad is None: the output must be computed from x, "
                "self.weight and self.bias with differentiable operations (or BatchNormFunction), and weight and "
                "bias must be torch.nn.Parameter.")
            scale = max(1.0, expected.abs().max().item())
            expect_close(got[name], expected, atol=1e-10 * scale, name=f"{name}.grad in {mode} mode, x of shape "
                                                                       f"{shape}",
                         hint="In training mode: the simplified formula of batchnorm_backward (through "
                              "BatchNormFunction); in eval mode the statistics are constants.")


@points(1)
@requires("test_batchnorm2d_training_steps_match_torch")
def test_batchnorm2d_has_the_parameters_and_buffers_of_torch(student):
    """BatchNorm2d(C) is an nn.Module with parameters weight (ones) and bias (zeros), buffers running_mean (zeros)
    and running_var (ones): the state_dict keys of torch.nn.BatchNorm2d"""
    C = 5
    got = student.run(initial_state, C)
    assert got["module"], "BatchNorm2d should subclass torch.nn.Module (and call super().__init__() first)."
    expected = {"weight": torch.ones(C), "bias": torch.zeros(C)}
    assert sorted(got["parameters"]) == ["bias", "weight"], (
        f"BatchNorm2d({C}).named_parameters() should be exactly weight and bias (torch.nn.Parameter), found "
        f"{sorted(got['parameters']) or 'none'}.")
    for name, value in expected.items():
        expect_close(got["parameters"][name], value, name=f"the initial {name} of BatchNorm2d({C})")
    buffers = {name: got["buffers"].get(name) for name in BUFFERS}
    assert all(isinstance(v, torch.Tensor) for v in buffers.values()), (
        f"BatchNorm2d({C}).named_buffers() should hold running_mean and running_var, found "
        f"{sorted(got['buffers']) or 'none'}: create them with self.register_buffer(name, tensor), so that they are "
        "saved in the state_dict and moved by .to(device), but not trained.")
    expect_close(buffers["running_mean"], torch.zeros(C), name=f"the initial running_mean of BatchNorm2d({C})")
    expect_close(buffers["running_var"], torch.ones(C), name=f"the initial running_var of BatchNorm2d({C})")
    missing = {"weight", "bias", *BUFFERS} - set(got["state_dict"])
    assert not missing, f"the state_dict of BatchNorm2d({C}) lacks {sorted(missing)}."


@points(1)
@requires("test_batchnorm2d_training_steps_match_torch")
def test_batchnorm2d_is_implemented_by_hand(student):
    """BatchNorm2d uses your batchnorm_forward, not torch.nn's batch normalization or torch.nn.functional"""
    try:
        expect_implemented_without(
            student, "BatchNorm2d",
            ["torch.nn.BatchNorm1d", "torch.nn.BatchNorm2d", "torch.nn.BatchNorm3d", "torch.nn.LazyBatchNorm1d",
             "torch.nn.LazyBatchNorm2d", "torch.nn.LazyBatchNorm3d", "torch.nn.SyncBatchNorm",
             "torch.nn.modules.batchnorm", "torch.nn.InstanceNorm2d", "torch.nn.GroupNorm", "torch.nn.functional",
             "torch.batch_norm", "torch.native_batch_norm", "torch.instance_norm", "torch.group_norm"],
            attributes={"batch_norm", "native_batch_norm", "instance_norm", "group_norm"})
    except AssertionError as error:
        raise AssertionError(f"{error} Build the module on your batchnorm_forward (and BatchNormFunction).") from None


@points(1)
@requires("test_batchnorm2d_training_steps_match_torch")
def test_batchnorm2d_follows_its_input_to_a_cuda_device(student):
    """moved with .to(device), BatchNorm2d runs on CUDA inputs and makes nothing on a fixed device"""
    g = torch.Generator().manual_seed(4)
    weight, bias = (t.float() for t in affine(g, 3))
    x = draw_batch(g, (2, 3, 4, 4)).float()
    expect_keeps_device(student, module_on_device, x, weight, bias,
                        hint="Register running_mean and running_var as buffers (so that .to(device) moves them), and "
                             "make nothing on the notebook's global device or on the CPU in forward.")


@gpu
@points(1)
@requires("test_batchnorm2d_training_steps_match_torch")
def test_batchnorm2d_on_the_gpu(student, device):
    """on a GPU, BatchNorm2d gives torch.nn.BatchNorm2d's outputs and running buffers, all on the GPU"""
    g = torch.Generator().manual_seed(5)
    weight, bias = affine(g, 3)
    x = draw_batch(g, (4, 3, 5, 5))
    got = student.on(device).run(module_on_cuda, x.float(), weight.float(), bias.float())
    reference = torch_module(3, weight, bias)
    train_out = reference(x).detach()
    reference.eval()
    expected = [train_out, reference(x).detach(), reference.running_mean, reference.running_var]
    assert isinstance(got, (list, tuple)) and len(got) == 4, "the GPU scenario did not return its four results."
    hint = "Register running_mean and running_var with register_buffer, so that .to(device) moves them."
    for name, mine, theirs in zip(("the training output", "the eval output", "running_mean", "running_var"), got,
                                  expected):
        expect_on_device(mine, device, theirs.float(), name=f"{name} on cuda", hint=hint, rtol=1e-4, atol=1e-4)
