# mutant: numerical_gradient that puts each entry back by adding h again instead of restoring the saved value: x ends up off by rounding
# replaces: numerical_gradient
# caught-by: test_gradient_check
def numerical_gradient(f, x, h=1e-5):
    """The gradient of f at x by central differences."""
    grad = torch.zeros_like(x)
    flat, grad_flat = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        flat[i] += h
        f_plus = float(f(x))
        flat[i] -= 2 * h
        f_minus = float(f(x))
        flat[i] += h
        grad_flat[i] = (f_plus - f_minus) / (2 * h)
    return grad
