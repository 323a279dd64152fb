"""Hidden tests for interpolate_latents (Chapter 7, section 5).

References, in float64: t = linspace(0, 1, steps); the linear path (1 - t) z0 + t z1; the spherical path with the
angle computed here in a numerically stable way (omega = 2 atan2(|u0 - u1|, |u0 + u1|) for the unit vectors u0, u1,
accurate for tiny and near-pi angles where arccos is not), and the linear path where sin(omega) < 1e-6 as the
docstring states. Every verdict is taken here.
"""
import math

import torch

from dlvision.grading import expect_close, expect_keeps_device, points, requires, speed_ratio

DTYPES = (torch.float64, torch.float32)
#: (D, steps): one dimension, two steps (the endpoints only), odd sizes, a DCGAN-sized code.
SIZES = [(1, 2), (2, 3), (5, 7), (16, 10), (64, 2), (100, 33)]

LINEAR_HINT = ("Row k is (1 - t[k]) * z0 + t[k] * z1 with t = torch.linspace(0, 1, steps): both endpoints included, "
               "so row 0 is z0 and the last row is z1.")
SLERP_HINT = ("Row k is sin((1 - t) * omega) / sin(omega) * z0 + sin(t * omega) / sin(omega) * z1, applied to z0 and "
              "z1 themselves (not to their unit vectors), with omega = arccos(z0 . z1 / (|z0| |z1|)) clamped to "
              "[-1, 1], and t = torch.linspace(0, 1, steps).")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def paths(cases):
    """interpolate_latents(z0, z1, steps, mode) for each case, as it came."""
    return [interpolate_latents(z0.clone(), z1.clone(), steps, mode) for z0, z1, steps, mode in cases]


def unknown_mode(z0, z1):
    """The class name of what interpolate_latents raises for mode "cubic" (None if it raises nothing)."""
    try:
        interpolate_latents(z0, z1, 3, "cubic")
    except Exception as error:  # noqa: BLE001 - the class is judged on the trusted side
        return type(error).__name__
    return None


def speed_inputs(generator):
    """Two 64-dimensional codes and 1000 steps of a spherical path (for speed_ratio)."""
    import torch

    z0, z1 = torch.randn(2, 64, generator=generator, dtype=torch.float64)
    return (z0, z1, 1000, "spherical"), {}


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference(z0, z1, steps, mode):
    a, b = z0.double(), z1.double()
    t = torch.linspace(0, 1, steps, dtype=torch.float64)[:, None]
    linear = (1 - t) * a + t * b
    if mode == "linear":
        return linear.to(z0.dtype)
    u0, u1 = a / a.norm(), b / b.norm()
    omega = 2 * math.atan2((u0 - u1).norm().item(), (u0 + u1).norm().item())
    if math.sin(omega) < 1e-6:
        return linear.to(z0.dtype)
    path = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / math.sin(omega)
    return path.to(z0.dtype)


def random_cases(seed, mode, unit=False):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for dtype in DTYPES:
        for d, steps in SIZES:
            z0, z1 = (torch.randn(d, generator=g, dtype=torch.float64) * 2 for _ in range(2))
            if d == 1:  # one dimension: the same or opposite direction; make it the same
                z1 = z1.abs() * z0.sign()
            if unit:
                z0, z1 = z0 / z0.norm(), z1 / z1.norm()
            cases.append((z0.to(dtype), z1.to(dtype), steps, mode))
    return cases


def speed_reference(z0, z1, steps, mode):
    return reference(z0, z1, steps, mode)


def describe(z0, steps, mode):
    return (f"interpolate_latents(z0, z1, {steps}, {mode!r}) for codes of {len(z0)} dimensions, "
            f"{str(z0.dtype).removeprefix('torch.')}")


def check(student, cases, hint, name_suffix=""):
    for (z0, z1, steps, mode), got in zip(cases, student.run(paths, cases)):
        expect_close(got, reference(z0, z1, steps, mode), name=describe(z0, steps, mode) + name_suffix, hint=hint)


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_linear_path_includes_both_endpoints(student):
    """mode "linear" gives (1 - t) z0 + t z1 for t = linspace(0, 1, steps), of shape (steps, D), in the dtype and on
    the device of z0; another mode raises ValueError"""
    cases = random_cases(1, "linear")
    check(student, cases, LINEAR_HINT)
    z0, z1, steps, mode = cases[3]
    expect_keeps_device(student, "interpolate_latents", z0, z1, steps, mode, hint=(
        "Make t with torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device): a t made on the CPU cannot be "
        "combined with codes on a GPU."))
    raised = student.run(unknown_mode, z0, z1)
    assert raised == "ValueError", (f"interpolate_latents(z0, z1, 3, 'cubic') should raise ValueError, "
                                    f"{'it raised ' + raised if raised else 'it returned normally'}.")


@points(1)
def test_spherical_path_matches_slerp(student):
    """mode "spherical" follows the slerp formula between two codes of any length, float64 and float32, on the device
    of z0"""
    cases = random_cases(2, "spherical")
    check(student, cases, SLERP_HINT)
    z0, z1, steps, mode = cases[3]
    expect_keeps_device(student, "interpolate_latents", z0, z1, steps, mode, hint=(
        "Make every new tensor (t, and anything else) with device=z0.device: the path must stay on the device of "
        "the codes."))


@points(1)
def test_spherical_path_keeps_unit_vectors_on_the_unit_sphere(student):
    """between two unit vectors, every point of the spherical path has norm 1 and the path hits both endpoints"""
    cases = [case for case in random_cases(3, "spherical", unit=True) if case[0].dtype == torch.float64]
    for (z0, z1, steps, _), got in zip(cases, student.run(paths, cases)):
        assert isinstance(got, torch.Tensor) and got.shape == (steps, len(z0)), (
            f"{describe(z0, steps, 'spherical')} should have shape ({steps}, {len(z0)}), got "
            f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}.")
        expect_close(got.norm(dim=1), torch.ones(steps, dtype=torch.float64),
                     name=f"the norms of the points of {describe(z0, steps, 'spherical')} between unit vectors",
                     hint="Slerp between unit vectors stays on the unit sphere. " + SLERP_HINT)
        expect_close(got[[0, -1]], torch.stack([z0, z1]), name=f"the endpoints of {describe(z0, steps, 'spherical')}",
                     hint="t runs from 0 to 1 inclusive: torch.linspace(0, 1, steps).")


def opposite_past_minus_one(g, dtype):
    """Opposite codes z0, -k * z0 whose cosine, computed as dot / (norm * norm) in dtype, rounds below -1 (so that
    arccos gives nan unless the cosine is clamped)."""
    while True:
        z0 = torch.randn(int(torch.randint(2, 40, (), generator=g)), generator=g, dtype=dtype)
        z1 = -(float(torch.rand((), generator=g)) * 5 + 0.1) * z0
        if torch.dot(z0, z1) / (z0.norm() * z1.norm()) < -1:
            return z0, z1


@points(1)
def test_spherical_path_is_linear_for_parallel_and_opposite_codes(student):
    """for parallel, nearly parallel (angle 1e-9) and opposite codes (some whose cosine rounds below -1), where
    sin(omega) is almost 0, the spherical path is the linear one (finite, no 0 / 0, no arccos of -1.0000001), and
    for a small angle (1e-3) still the slerp"""
    g = torch.Generator().manual_seed(4)
    cases = []
    for dtype in DTYPES:
        z0 = torch.randn(8, generator=g, dtype=torch.float64)
        other = torch.randn(8, generator=g, dtype=torch.float64)
        other = other - (other @ z0) / (z0 @ z0) * z0  # orthogonal to z0
        tilt = lambda angle: (math.cos(angle) * z0 / z0.norm() + math.sin(angle) * other / other.norm()) * 2.5  # noqa
        for z1 in (3 * z0, z0.clone(), tilt(1e-9), -2 * z0, tilt(1e-3)):
            cases.append((z0.to(dtype), z1.to(dtype), 5, "spherical"))
        cases.append(opposite_past_minus_one(g, dtype) + (5, "spherical"))
    for (z0, z1, steps, mode), got in zip(cases, student.run(paths, cases)):
        cosine = float(z0.double() @ z1.double() / (z0.double().norm() * z1.double().norm()))
        expect_close(got, reference(z0, z1, steps, mode), name=f"{describe(z0, steps, mode)} for codes with cosine "
                     f"similarity {cosine:.12g}", hint=(
                         "Where sin(omega) < 1e-6 (parallel or opposite codes) the formula divides 0 by 0: return the "
                         "linear path there. Remember that torch.where computes both branches: make the division safe "
                         "(or use an if on the angle), and clamp the cosine to [-1, 1] before arccos: rounding can push it just past -1 or 1."))


#: The speed test's bound (see THRESHOLDS.md): a vectorised path takes 1 to 3 times the reference's time.
SPEED_BOUND = 15


@points(1)
@requires("test_linear_path_includes_both_endpoints", "test_spherical_path_matches_slerp")
def test_interpolation_is_vectorised(student):
    """a spherical path of 1000 steps between 64-dimensional codes runs within 15x the reference's time (no Python
    loop over t)"""
    ratio = speed_ratio(student, "interpolate_latents", speed_reference, speed_inputs)
    assert ratio < SPEED_BOUND, (
        f"interpolate_latents took {ratio:.0f} times as long as the reference on a spherical path of 1000 steps "
        f"(allowed: {SPEED_BOUND} times; a vectorised answer takes 1 to 3 times). Compute all the steps at once: t "
        "as a column (steps, 1) broadcast against z0 and z1 (D,) gives the whole (steps, D) path in a few operations.")
