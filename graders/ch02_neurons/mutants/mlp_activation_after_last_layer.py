# mutant: MLP that applies the activation after the last layer too
# replaces: mlp
# caught-by: test_mlp
class MLP(torch.nn.Module):
    """A multi-layer perceptron."""

    def __init__(self, sizes, activation):
        super().__init__()
        self.layers = torch.nn.ModuleList(Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:]))
        self.activation = activation

    def forward(self, x):
        for layer in self.layers:
            x = self.activation(layer(x))
        return x
