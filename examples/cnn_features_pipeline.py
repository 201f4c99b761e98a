"""CNN features -> LogisticRegression: the CNN as a feature extractor (``transform``) in a GridSearchCV.

Inside the Pipeline the CNN is fitted on each training fold, then its
``transform`` gives the penultimate layer's activations (the 64 outputs of
``dense64``) as features for a logistic regression, whose ``C`` the grid
search tunes. ``get_feature_names_out`` names the features; the CNN's own
softmax head is printed for comparison.

Run: ``python examples/cnn_features_pipeline.py`` (about 30 seconds). The
environment variable ``MINICNN_EXAMPLE_EPOCHS`` overrides the number of epochs.
"""

import os

from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from minicnn import CNNClassifier

EPOCHS = int(os.environ.get("MINICNN_EXAMPLE_EPOCHS", 10))

X, y = load_digits(return_X_y=True)              # (1797, 64) flat rows, gray levels 0..16
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)

cnn = CNNClassifier(layers=("conv16", "maxpool", "dense64"), input_shape=(8, 8, 1), dropout_rate=0.25,
                    batch_size=32, max_iter=EPOCHS, n_threads=1, random_state=0)
pipe = Pipeline([("cnn", cnn), ("scale", StandardScaler()), ("logreg", LogisticRegression(max_iter=1000))])
search = GridSearchCV(pipe, {"logreg__C": [0.01, 0.1, 1.0]}, cv=3).fit(X_train, y_train)

features = search.best_estimator_["cnn"].get_feature_names_out()
print(f"CNN features: {len(features)} ({features[0]} ... {features[-1]})")
print(f"best: {search.best_params_} (cross-validated accuracy {search.best_score_:.4f})")
print(f"CNN features + LogisticRegression test accuracy: {search.score(X_test, y_test):.4f}")
print(f"the CNN's own softmax head, test accuracy:        {search.best_estimator_['cnn'].score(X_test, y_test):.4f}")
