# mutant: collapse_linear that multiplies the matrices in the wrong order (W @ W_k instead of W_k @ W)
# replaces: collapse_linear
# caught-by: test_collapse
def collapse_linear(layers):
    """The single affine layer equal to a stack of affine layers."""
    W, b = layers[0]
    for W_k, b_k in layers[1:]:
        W = W @ W_k
        b = W_k @ b + b_k
    return W, b
