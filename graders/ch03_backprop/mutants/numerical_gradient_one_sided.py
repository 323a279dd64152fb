# mutant: numerical_gradient with the one-sided difference (f(x + h) - f(x)) / h, whose error is of order h
# replaces: numerical_gradient
# caught-by: test_gradient_check
def numerical_gradient(f, x, h=1e-5):
    """The gradient of f at x by finite differences."""
    grad = torch.zeros_like(x)
    flat, grad_flat = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        f_here = float(f(x))
        flat[i] = old + h
        f_plus = float(f(x))
        flat[i] = old
        grad_flat[i] = (f_plus - f_here) / h
    return grad
