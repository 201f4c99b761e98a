"""Choose where dropout goes with GridSearchCV: placement and rate are ordinary hyper-parameters.

Run: ``python examples/grid_search_placement.py`` (under a minute). The
environment variable ``MINICNN_EXAMPLE_EPOCHS`` overrides the number of
epochs (the tests use 2).
"""

import os

from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from minicnn import CNNClassifier
from minicnn.datasets import load_digits_images

EPOCHS = int(os.environ.get("MINICNN_EXAMPLE_EPOCHS", 12))

X, y = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)

base = CNNClassifier(layers=("conv8", "maxpool", "conv16", "maxpool", "dense32"), padding="same",
                     dropout_kind="element", learning_rate=3e-3, batch_size=32, max_iter=EPOCHS,
                     n_threads=1,          # one thread per fit: GridSearchCV runs the fits in parallel
                     random_state=0)
grid = [
    {"dropout": ["none"]},                                       # the rate is irrelevant without dropout
    {"dropout": ["after_last_pool", "after_each_layer", "last:2"], "dropout_rate": [0.25, 0.5]},
]
search = GridSearchCV(base, grid, cv=StratifiedKFold(3, shuffle=True, random_state=0), n_jobs=2)
search.fit(X_train, y_train)

print(f"{'dropout':<18} {'rate':>5} {'cv accuracy':>16}")
results = search.cv_results_
for params, mean, std in sorted(zip(results["params"], results["mean_test_score"], results["std_test_score"]),
                                key=lambda r: -r[1]):
    rate = params.get("dropout_rate", "-")
    print(f"{params['dropout']:<18} {rate:>5} {mean:>9.4f} ± {std:.4f}")
print(f"best: {search.best_params_}; test accuracy of the refitted best model: "
      f"{search.score(X_test, y_test):.4f}")
