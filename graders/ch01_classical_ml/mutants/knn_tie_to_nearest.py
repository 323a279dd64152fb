# mutant: kNN that breaks vote ties by the label of the nearest neighbour, not by the smallest label
# replaces: knn_predict
# caught-by: test_knn
def knn_predict(X_train, y_train, X_test, k):
    """k-nearest-neighbour predictions by majority vote."""
    nearest = pairwise_sq_distances(X_test, X_train).topk(k, dim=1, largest=False, sorted=True).indices
    labels = y_train[nearest]                                   # (N, k), nearest first
    counts = (labels[:, :, None] == labels[:, None, :]).sum(2)  # votes of each neighbour's label
    best = counts.max(dim=1, keepdim=True).values
    first = (counts == best).int().argmax(dim=1)                # the nearest neighbour among the winners
    return labels.gather(1, first[:, None])[:, 0]
