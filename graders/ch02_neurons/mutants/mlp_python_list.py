# mutant: MLP that keeps its layers in a plain Python list, so parameters() does not see them
# replaces: mlp
# caught-by: test_mlp
class MLP(torch.nn.Module):
    """A multi-layer perceptron."""

    def __init__(self, sizes, activation):
        super().__init__()
        self.layers = [Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        self.activation = activation

    def forward(self, x):
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if k < len(self.layers) - 1:
                x = self.activation(x)
        return x
