# mutant: linear_backward that sums dout over the wrong axis for db (over the outputs instead of the batch)
# replaces: linear_layer
# caught-by: test_layers
def linear_forward(x, W, b):
    """out = x @ W + b."""
    return x @ W + b, (x, W, b)


def linear_backward(dout, cache):
    """The backward pass of linear_forward."""
    x, W, b = cache
    return dout @ W.T, x.T @ dout, dout.sum(dim=1)
