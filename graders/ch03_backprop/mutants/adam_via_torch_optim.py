# mutant: adam_step that keeps a torch.optim.Adam in state, built by a helper (right values, off limits)
# replaces: adam_step
# caught-by: test_update_rules
def _optimizer(params, state, lr, betas, eps):
    if "optimizer" not in state:
        state["leaves"] = {name: value.clone() for name, value in params.items()}
        state["optimizer"] = torch.optim.Adam(list(state["leaves"].values()), lr=lr, betas=betas, eps=eps,
                                              foreach=False)
    return state["optimizer"], state["leaves"]


def adam_step(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    """One step of Adam, PyTorch's convention (bias-corrected moments, eps added to sqrt(v_hat))."""
    optimizer, leaves = _optimizer(params, state, lr, betas, eps)
    for name, grad in grads.items():
        leaves[name].grad = grad.clone()
    optimizer.step()
    for name in grads:
        params[name] = leaves[name].detach().clone()
