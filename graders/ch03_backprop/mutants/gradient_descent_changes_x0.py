# mutant: gradient_descent that steps x0 itself in place (x = x0; x -= ...), copying each point: right path, caller's x0 changed
# replaces: gradient_descent
# caught-by: test_update_rules
def gradient_descent(grad_fn, x0, lr, steps):
    """Gradient descent from x0: x_{k+1} = x_k - lr * grad_fn(x_k), for k = 0 .. steps - 1."""
    x = x0
    path = [x.clone()]
    for _ in range(steps):
        x -= lr * grad_fn(x)
        path.append(x.clone())
    return torch.stack(path)
