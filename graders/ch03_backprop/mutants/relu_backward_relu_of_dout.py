# mutant: relu_backward that applies relu to the upstream gradient instead of masking it by the input's sign
# replaces: relu_layer
# caught-by: test_layers test_spiral
def relu_forward(x):
    """out = max(0, x), elementwise."""
    return torch.where(x > 0, x, torch.zeros_like(x)), x


def relu_backward(dout, cache):
    """dL/dx for relu_forward."""
    return torch.where(dout > 0, dout, torch.zeros_like(dout))
