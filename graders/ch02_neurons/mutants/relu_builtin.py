# mutant: relu that calls the ready-made torch.relu (off limits)
# replaces: relu
# caught-by: test_activations
def relu(x):
    """max(0, x), elementwise."""
    return torch.relu(x)
