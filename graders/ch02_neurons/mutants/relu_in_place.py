# mutant: relu that zeroes the negative entries of its input in place and returns it
# replaces: relu
# caught-by: test_activations
def relu(x):
    """max(0, x), elementwise."""
    x[x < 0] = 0
    return x
