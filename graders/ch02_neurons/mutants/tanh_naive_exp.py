# mutant: tanh as (e^x - e^-x) / (e^x + e^-x), which is inf / inf = nan once e^x overflows
# replaces: tanh
# caught-by: test_activations
def tanh(x):
    """The hyperbolic tangent, elementwise."""
    return (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))
