# mutant: linear_backward with dW = dout.T @ x, the transpose of the right gradient (shape (M, D) instead of (D, M))
# replaces: linear_layer
# caught-by: test_layers
def linear_forward(x, W, b):
    """out = x @ W + b."""
    return x @ W + b, (x, W, b)


def linear_backward(dout, cache):
    """The backward pass of linear_forward."""
    x, W, b = cache
    return dout @ W.T, dout.T @ x, dout.sum(dim=0)
