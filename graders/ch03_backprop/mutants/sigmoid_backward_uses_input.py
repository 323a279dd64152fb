# mutant: sigmoid_backward computed with the input x, dout * x * (1 - x), instead of the output s = sigmoid(x)
# replaces: sigmoid_layer
# caught-by: test_layers
def sigmoid_forward(x):
    """out = 1 / (1 + exp(-x)), elementwise."""
    return torch.sigmoid(x), x


def sigmoid_backward(dout, cache):
    """dL/dx for sigmoid_forward."""
    x = cache
    return dout * x * (1 - x)
