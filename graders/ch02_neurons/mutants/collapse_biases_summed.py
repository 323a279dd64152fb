# mutant: collapse_linear that adds up the biases instead of passing each through the later layers
# replaces: collapse_linear
# caught-by: test_collapse
def collapse_linear(layers):
    """The single affine layer equal to a stack of affine layers."""
    W, b = layers[0]
    for W_k, b_k in layers[1:]:
        W = W_k @ W
        b = b + b_k
    return W, b
