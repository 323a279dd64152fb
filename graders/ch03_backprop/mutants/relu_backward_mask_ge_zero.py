# mutant: relu_backward that passes the gradient where x >= 0, i.e. derivative 1 at exactly 0 (PyTorch uses 0)
# replaces: relu_layer
# caught-by: test_layers
def relu_forward(x):
    """out = max(0, x), elementwise."""
    return torch.where(x > 0, x, torch.zeros_like(x)), x


def relu_backward(dout, cache):
    """dL/dx for relu_forward."""
    x = cache
    return dout * (x >= 0)
