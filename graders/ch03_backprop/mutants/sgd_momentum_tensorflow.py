# mutant: sgd_momentum_step the TensorFlow way (v = momentum * v - lr * g; p = p + v): differs from PyTorch once lr changes
# replaces: sgd_momentum_step
# caught-by: test_update_rules
def sgd_momentum_step(params, grads, state, lr, momentum=0.9):
    """One step of SGD with momentum, PyTorch's convention: v = g at the first step, then v = momentum * v + g;
    p = p - lr * v.

    params, grads: dicts with the same keys, of tensors of matching shapes. state: a dict, {} before the first
    step, then the same dict every step. lr may change from one step to the next.
    Updates params in place and returns None. Off limits: torch.optim.
    """
    for name, grad in grads.items():
        velocity = state.get(name, torch.zeros_like(grad))
        state[name] = momentum * velocity - lr * grad
        params[name] = params[name] + state[name]
