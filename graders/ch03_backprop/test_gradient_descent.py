"""Hidden tests for gradient_descent (Chapter 3, section 5).

The reference applies x <- x - lr * grad(x) here, in float64, on quadratic bowls f(x) = 0.5 x^T A x - b^T x,
whose gradient A x - b the grader's scenario hands to the student's function.
"""
import torch

from dlvision.grading import expect_close, points

UPDATE_HINT = "Row 0 is x0; row k + 1 is x_k - lr * grad_fn(x_k). Return all steps + 1 points, stacked."


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def descend(A, b, x0, lr, steps):
    """gradient_descent on the bowl with gradient A @ x - b; also x0 as it is afterwards and the points asked about."""
    seen = []

    def grad_fn(x):
        seen.append(x.clone())
        return A @ x - b

    start = x0.clone()
    path = gradient_descent(grad_fn, start, lr, steps)
    return {"path": path, "x0_after": start, "seen": seen}


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


@points(1)
def test_x0_is_left_alone_and_each_point_is_a_new_tensor(student):
    """gradient_descent does not modify x0, and grad_fn is asked about each point of the path in turn"""
    A, b, x0 = bowl(2, 7)
    got = student.run(descend, A, b, x0, 0.1, 6)
    assert torch.equal(got["x0_after"], x0), (
        "gradient_descent changed x0: the caller's starting point is now "
        f"{got['x0_after'].tolist()} instead of {x0.tolist()}. Start from x = x0.clone(), and update with "
        "x = x - lr * g (a new tensor) rather than x -= lr * g on the caller's tensor.")
    expected = reference(A, b, x0, 0.1, 6)
    assert len(got["seen"]) == 6, f"grad_fn should be called once per step (6 times), it was called {len(got['seen'])} times."
    for k, seen in enumerate(got["seen"]):
        expect_close(seen, expected[k], name=f"the point grad_fn was given at step {k}",
                     hint="Evaluate the gradient at the current point x_k, then step.")
    expect_close(got["path"], expected, name="the trajectory",
                 hint="Every row must be a separate point: appending x and then updating it in place "
                      "(x -= ...) makes all rows the same tensor.")
