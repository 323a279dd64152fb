# mutant: gelu with the tanh approximation instead of the exact erf form
# replaces: gelu
# caught-by: test_activations
def gelu(x):
    """GELU, elementwise."""
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
