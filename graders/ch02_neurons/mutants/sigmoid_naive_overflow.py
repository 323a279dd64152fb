# mutant: the textbook sigmoid 1 / (1 + exp(-x)): right values, but exp(-x) overflows to inf for x << 0 and the gradient is 0 * inf = nan
# replaces: sigmoid
# caught-by: test_activations
def sigmoid(x):
    """The logistic sigmoid 1 / (1 + exp(-x)), elementwise."""
    return 1 / (1 + torch.exp(-x))
