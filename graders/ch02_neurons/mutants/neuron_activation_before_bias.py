# mutant: neuron that applies the activation before adding the bias
# replaces: neuron
# caught-by: test_neuron
def neuron(x, w, b, activation):
    """activation(x @ w + b)."""
    return activation(x @ w) + b
