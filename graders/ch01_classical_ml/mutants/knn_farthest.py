# mutant: kNN votes among the k FARTHEST training points (topk without largest=False)
# replaces: knn_predict
# caught-by: test_knn
def knn_predict(X_train, y_train, X_test, k):
    """k-nearest-neighbour predictions by majority vote."""
    farthest = pairwise_sq_distances(X_test, X_train).topk(k, dim=1).indices
    classes = int(y_train.max()) + 1
    votes = torch.zeros(X_test.shape[0], classes, dtype=torch.int64, device=X_test.device)
    votes.scatter_add_(1, y_train[farthest], torch.ones_like(farthest))
    return votes.argmax(dim=1)
