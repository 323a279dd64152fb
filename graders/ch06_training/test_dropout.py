"""Hidden tests for dropout (Chapter 6, section 2).

The contract fixes the random draw (one torch.rand(x.shape, generator=generator, device=x.device) per training
call), so the grader replays it here with a generator seeded alike and expects exactly x * (u >= p) / (1 - p).
The statistics (the fraction dropped, the mean kept) and the gradient are checked on fresh draws, by behaviour.
"""
import torch

from dlvision.grading import (expect_close, expect_implemented_without, expect_keeps_device, fresh_seed, points,
                              requires)

DRAW_HINT = ("Draw u = torch.rand(x.shape, generator=generator, device=x.device) once per training call (float32, the "
             "default dtype, whatever x's dtype), keep where u >= p, and scale what you keep by 1 / (1 - p).")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def dropout_calls(x, calls, seed):
    """dropout(x, p, training, g) for each (p, training) of calls, in order, with one generator seeded `seed`."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return [dropout(x, p, training, g) for p, training in calls]


def dropout_with_gradient(x, p, upstream, seed):
    """The output for x and the gradient that backward() of sum(out * upstream) leaves in x.grad."""
    import torch

    leaf = x.clone().requires_grad_(True)
    out = dropout(leaf, p, True, torch.Generator().manual_seed(seed))
    if isinstance(out, torch.Tensor) and out.requires_grad:
        (out * upstream).sum().backward()
    return {"out": out.detach() if isinstance(out, torch.Tensor) else out, "grad": leaf.grad}


# --- helpers on the trusted side -------------------------------------------------------------------------------

def replay(x, calls, seed):
    """The contract's outputs for the same calls, with the same generator: x * (u >= p) / (1 - p), x in eval mode."""
    g = torch.Generator().manual_seed(seed)
    outputs = []
    for p, training in calls:
        if not training:
            outputs.append(x.clone())
            continue
        keep = torch.rand(x.shape, generator=g) >= p
        scale = 1 / (1 - p) if p < 1 else 0.0
        outputs.append((x.double() * keep * scale).to(x.dtype))
    return outputs


def check_calls(student, x, calls, seed, label, hint=DRAW_HINT):
    got = student.run(dropout_calls, x, calls, seed)
    assert isinstance(got, list) and len(got) == len(calls), "dropout did not return one result per call."
    for k, (out, expected, (p, training)) in enumerate(zip(got, replay(x, calls, seed), calls), start=1):
        expect_close(out, expected, name=f"{label}: call {k}, dropout(x, p={p}, training={training})", hint=hint)


def boundary_p(shape, seed):
    """A p equal to one of the values u the generator will draw: that entry must be kept (u >= p)."""
    u = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    return float(u.reshape(-1)[u.numel() // 2])


#: Bounds of the statistics test (see THRESHOLDS.md): at least 5 standard deviations of a correct dropout's fraction
#: dropped and mean, on 100,000 units; every wrong answer that gets this far is off by 0.2 or more.
FRACTION_TOLERANCE = 0.008
MEAN_TOLERANCE = 0.025


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_dropout_replays_the_stated_draws(student):
    """in training mode, dropout(x, p, True, g) is exactly x * (u >= p) / (1 - p) with u = torch.rand(x.shape, g),
    over consecutive calls with one generator, float32 and float64, and p equal to a drawn u"""
    g = torch.Generator().manual_seed(1)
    for k, (shape, dtype) in enumerate((((7,), torch.float32), ((4, 5), torch.float64), ((2, 3, 4, 4), torch.float32),
                                        ((3, 1, 2, 5), torch.float64))):
        x = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
        seed = 100 + k
        check_calls(student, x, [(0.5, True), (0.1, True), (0.75, True)], seed,
                    f"x of shape {shape}, {str(dtype)[6:]}, one generator seeded {seed}")
        p = boundary_p(shape, seed)
        check_calls(student, x, [(p, True)], seed,
                    f"x of shape {shape}, p equal to one of the drawn u",
                    "An entry whose u equals p exactly is kept: keep = u >= p (not u > p). " + DRAW_HINT)


@points(1)
def test_dropout_drops_a_fraction_p_and_keeps_the_mean(student):
    """on 100,000 units, dropout zeroes a fraction p (within 0.008) and scales the rest by 1 / (1 - p), keeping the
    mean (within 2.5%)"""
    x = torch.full((100_000,), 2.5)
    for p in (0.2, 0.6):
        seed = fresh_seed()
        (out,) = student.run(dropout_calls, x, [(p, True)], seed)
        assert isinstance(out, torch.Tensor) and out.shape == x.shape, (
            f"dropout(x, {p}, True, g) should return a tensor of x's shape {tuple(x.shape)}.")
        out = out.double()
        dropped = (out == 0).double().mean().item()
        assert abs(dropped - p) < FRACTION_TOLERANCE, (
            f"dropout(x, p={p}, training=True) zeroed {dropped:.2%} of 100,000 units; expected about {p:.0%}. p is "
            "the probability of DROPPING a unit: keep where u >= p.")
        kept = out[out != 0]
        expect_close(kept, torch.full_like(kept, 2.5 / (1 - p)), rtol=1e-6, atol=0,
                     name=f"the kept units of dropout(x = 2.5 everywhere, p={p})",
                     hint="Inverted dropout scales every kept unit by 1 / (1 - p), so that the mean stays the same.")
        assert abs(out.mean().item() / 2.5 - 1) < MEAN_TOLERANCE, (
            f"the mean of dropout(x, p={p}) is {out.mean().item():.4g}, the mean of x is 2.5: inverted dropout keeps "
            "the expected value, E[out] = x.")


@points(1)
def test_dropout_gradient_is_the_scaled_mask(student):
    """the gradient reaching x through dropout is the upstream gradient times keep / (1 - p)"""
    g = torch.Generator().manual_seed(2)
    for shape, p in (((6, 7), 0.3), ((2, 3, 4, 4), 0.5)):
        x = torch.rand(shape, generator=g, dtype=torch.float64) + 0.5        # no zeros: out == 0 marks a drop
        upstream = torch.randn(shape, generator=g, dtype=torch.float64)
        got = student.run(dropout_with_gradient, x, p, upstream, fresh_seed())
        out = got["out"]
        assert isinstance(out, torch.Tensor) and out.shape == x.shape, (
            f"dropout should return a tensor of x's shape {tuple(x.shape)}.")
        keep = out != 0
        assert 0 < keep.double().mean().item() < 1, (
            f"dropout(x, p={p}, training=True) kept {keep.double().mean().item():.0%} of the units; it should drop "
            f"about {p:.0%} of them.")
        expect_close(out, x * keep / (1 - p), name=f"dropout(x, p={p}) where it keeps a unit", hint=DRAW_HINT)
        assert got["grad"] is not None, (
            "x.grad is None after backward(): dropout's output must be computed from x with differentiable "
            "operations (no .detach(), no torch.tensor(...) of x).")
        expect_close(got["grad"], upstream * keep / (1 - p), name=f"x.grad through dropout(x, p={p})",
                     hint="d out / d x is keep / (1 - p): 1 / (1 - p) where the unit is kept, 0 where it is dropped.")


@points(1)
@requires("test_dropout_replays_the_stated_draws")
def test_dropout_is_the_identity_in_eval_mode_and_draws_nothing(student):
    """dropout(x, p, False, g) returns x for any p, without drawing from g (the next training call is unaffected)"""
    x = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(3))
    check_calls(student, x, [(0.5, True), (0.9, False), (1.0, False), (0.5, True)], 7, "x of shape (3, 4, 5)",
                "In eval mode return x as it is (no scaling), and draw no random numbers, so that the generator is "
                "left where it was. " + DRAW_HINT)


@points(1)
@requires("test_dropout_replays_the_stated_draws")
def test_dropout_with_p_0_keeps_everything_and_p_1_drops_everything(student):
    """p = 0 returns x (still one draw), p = 1 returns zeros without nan, in value and in gradient"""
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    check_calls(student, x, [(0.0, True), (0.5, True)], 8, "x of shape (4, 6)",
                "p = 0 drops nothing, but the contract still draws u once. " + DRAW_HINT)
    check_calls(student, x, [(1.0, True)], 9, "x of shape (4, 6)",
                "With p = 1 every unit is dropped: return zeros; x / (1 - p) is x / 0 = inf, and 0 * inf is nan.")
    got = student.run(dropout_with_gradient, x, 1.0, torch.ones_like(x), 9)
    assert got["grad"] is not None, "x.grad is None after backward() through dropout(x, p=1)."
    expect_close(got["grad"], torch.zeros_like(x), name="x.grad through dropout(x, p=1)",
                 hint="No unit is kept, so the gradient is 0 everywhere; a division by 1 - p = 0 makes it nan.")


@points(1)
@requires("test_dropout_replays_the_stated_draws")
def test_dropout_is_implemented_by_hand(student):
    """dropout does not use a ready-made dropout (torch.nn.functional, torch.dropout, torch.nn.Dropout)"""
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(5))
    try:
        expect_implemented_without(
            student, "dropout",
            ["torch.nn", "torch.dropout", "torch.native_dropout", "torch.alpha_dropout", "torch.feature_dropout",
             "torch.feature_alpha_dropout", "torch.bernoulli"],
            attributes={"dropout", "native_dropout", "alpha_dropout", "feature_dropout", "dropout_"},
            calling=((x, 0.3, True, None), {}))
    except AssertionError as error:
        raise AssertionError(f"{error} Draw the mask with torch.rand and apply it yourself.") from None


@points(1)
@requires("test_dropout_replays_the_stated_draws")
def test_dropout_keeps_the_device_of_its_input(student):
    """for x on a CUDA device, dropout draws its mask there and returns a tensor there"""
    x = torch.randn(3, 4)
    expect_keeps_device(student, "dropout", x, 0.3, True, None,
                        hint="Draw the mask on x's device: torch.rand(x.shape, generator=generator, device=x.device).")
