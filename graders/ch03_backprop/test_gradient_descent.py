"""Hidden tests for gradient_descent (Chapter 3, section 5).

The reference applies x <- x - lr * grad(x) here, in float64, on quadratic bowls f(x) = 0.5 x^T A x - b^T x,
whose gradient A x - b the grader's scenario hands to the student's function.
"""
import torch

from dlvision.grading import expect_close, expect_keeps_device, points, requires

UPDATE_HINT = "Row 0 is x0; row k + 1 is x_k - lr * grad_fn(x_k). Return all steps + 1 points, stacked."


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def descend(A, b, x0, lr, steps):
    """gradient_descent on the bowl with gradient A @ x - b; also x0 as it is afterwards."""
    start = x0.clone()
    path = gradient_descent(lambda x: A @ x - b, start, lr, steps)
    return {"path": path, "x0_after": start}


def gradient_descent_on_a_bowl(A, b, x0, device="cpu"):
    """gradient_descent on the bowl with gradient A @ x - b, for expect_keeps_device (which moves A, b and x0)."""
    return gradient_descent(lambda x: A @ x - b, x0, 0.1, 4)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def bowl(d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0]
    A = q @ torch.diag(torch.linspace(1.0, 10.0, d, dtype=torch.float64)) @ q.T
    return A.to(dtype), torch.randn(d, generator=g, dtype=torch.float64).to(dtype), \
        (3 * torch.randn(d, generator=g, dtype=torch.float64)).to(dtype)


def reference(A, b, x0, lr, steps):
    path = [x0.double()]
    for _ in range(steps):
        path.append(path[-1] - lr * (A.double() @ path[-1] - b.double()))
    return torch.stack(path).to(x0.dtype)


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_trajectory_follows_the_update_rule(student):
    """the trajectory has shape (steps + 1, D), starts at x0 and follows x <- x - lr * grad(x), for several lr"""
    for d, lr, steps, dtype in ((2, 0.05, 30, torch.float64), (2, 0.19, 25, torch.float64), (3, 0.1, 1, torch.float64),
                                (2, 0.21, 12, torch.float64), (5, 0.02, 0, torch.float64), (2, 0.1, 10, torch.float32)):
        A, b, x0 = bowl(d, steps + d, dtype)
        got = student.run(descend, A, b, x0, lr, steps)
        expect_close(got["path"], reference(A, b, x0, lr, steps),
                     name=f"gradient_descent(lr={lr}, steps={steps}) from x0 of shape ({d},), "
                          f"{str(dtype).removeprefix('torch.')}", hint=UPDATE_HINT)
    # The docstring's "dtype and device of x0", on a GPU or the stand-in: it can only fail this test.
    expect_keeps_device(student, gradient_descent_on_a_bowl, *bowl(3, 11, torch.float32), hint=(
        "gradient_descent must work on any device and return the trajectory on the device of x0: collect the "
        "points in a list and torch.stack them, or preallocate with torch.zeros(..., dtype=x0.dtype, "
        "device=x0.device). A torch.zeros(...) without device= lives on the CPU, and copying the GPU points into "
        "it moves them there."))


@points(1)
@requires("test_trajectory_follows_the_update_rule")
def test_x0_is_left_unchanged(student):
    """gradient_descent does not modify the caller's x0"""
    A, b, x0 = bowl(2, 7)
    got = student.run(descend, A, b, x0, 0.1, 6)
    after = got["x0_after"]
    assert isinstance(after, torch.Tensor) and after.shape == x0.shape and torch.equal(after, x0), (
        "gradient_descent changed x0: the caller's starting point is now "
        f"{after.tolist() if isinstance(after, torch.Tensor) else after} instead of {x0.tolist()}. Start from "
        "x = x0.clone(), and update with x = x - lr * g (a new tensor) rather than x -= lr * g on the caller's "
        "tensor.")
