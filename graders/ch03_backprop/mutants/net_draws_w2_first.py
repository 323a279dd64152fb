# mutant: TwoLayerNet that draws W2 before W1 from the generator (same statistics, not the stated draws)
# replaces: two_layer_net
# caught-by: test_two_layer_net
class TwoLayerNet:
    """linear -> relu -> linear, with the softmax cross-entropy loss. Built from your layers above.

    self.params: a dict of tensors with exactly the keys "W1" (input_dim, hidden_dim), "b1" (hidden_dim,),
      "W2" (hidden_dim, num_classes), "b2" (num_classes,). At construction: float32 on the CPU,
      W1 = std * torch.randn(input_dim, hidden_dim, generator=generator), then
      W2 = std * torch.randn(hidden_dim, num_classes, generator=generator), biases zero.
      scores and loss read self.params each time they are called, so the entries can be replaced (by an
      optimizer, or by tensors of another dtype or device).
    scores(X): X (N, input_dim) -> logits (N, num_classes).
    loss(X, y, reg=0.0): returns (loss, grads): loss is a 0-d tensor, the mean softmax cross-entropy plus
      0.5 * reg * (sum(W1 ** 2) + sum(W2 ** 2)); grads is a dict with the keys of self.params holding the
      gradients of that loss, each of its parameter's shape. Off limits: autograd, torch.nn.
    """

    def __init__(self, input_dim, hidden_dim, num_classes, std=1e-2, generator=None):
        W2 = std * torch.randn(hidden_dim, num_classes, generator=generator)
        W1 = std * torch.randn(input_dim, hidden_dim, generator=generator)
        self.params = {"W1": W1, "b1": torch.zeros(hidden_dim), "W2": W2, "b2": torch.zeros(num_classes)}

    def scores(self, X):
        p = self.params
        hidden, _ = relu_forward(linear_forward(X, p["W1"], p["b1"])[0])
        return linear_forward(hidden, p["W2"], p["b2"])[0]

    def loss(self, X, y, reg=0.0):
        p = self.params
        a, linear1_cache = linear_forward(X, p["W1"], p["b1"])
        hidden, relu_cache = relu_forward(a)
        logits, linear2_cache = linear_forward(hidden, p["W2"], p["b2"])
        data_loss, dlogits = softmax_cross_entropy(logits, y)
        loss = data_loss + 0.5 * reg * ((p["W1"] ** 2).sum() + (p["W2"] ** 2).sum())
        dhidden, dW2, db2 = linear_backward(dlogits, linear2_cache)
        da = relu_backward(dhidden, relu_cache)
        _, dW1, db1 = linear_backward(da, linear1_cache)
        return loss, {"W1": dW1 + reg * p["W1"], "b1": db1, "W2": dW2 + reg * p["W2"], "b2": db2}
