# mutant: gradient_descent that returns only the steps points after x0, not x0 itself
# replaces: gradient_descent
# caught-by: test_update_rules
def gradient_descent(grad_fn, x0, lr, steps):
    """Gradient descent from x0: x_{k+1} = x_k - lr * grad_fn(x_k), for k = 0 .. steps - 1.

    grad_fn: maps a tensor of shape (D,) to the gradient, of shape (D,). x0: (D,) floating point; not modified.
    Returns the trajectory, a new tensor of shape (steps + 1, D) whose row k is x_k (row 0 is x0), with the
    dtype and device of x0.
    """
    x = x0.clone()
    path = [x]
    for _ in range(steps):
        x = x - lr * grad_fn(x)
        path.append(x)
    return torch.stack(path[1:])
