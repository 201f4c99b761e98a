"""A CNN inside a scikit-learn Pipeline (with a preprocessing step), persisted with joblib.

The Pipeline receives flat 64-pixel rows (scikit-learn's ``load_digits``),
standardizes them, and the CNN reads each row back as an 8x8 image through
``input_shape``. The whole Pipeline is saved with ``joblib.dump`` (pickle:
load only files you trust; a lone estimator can use the pickle-free
``est.save`` / ``minicnn.load`` instead).

Run: ``python examples/pipeline_persistence.py`` (about 5 seconds). The
environment variable ``MINICNN_EXAMPLE_EPOCHS`` overrides the number of epochs.
"""

import os
import tempfile

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from minicnn import CNNClassifier

EPOCHS = int(os.environ.get("MINICNN_EXAMPLE_EPOCHS", 20))

X, y = load_digits(return_X_y=True)              # (1797, 64) flat rows, gray levels 0..16
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)

pipe = make_pipeline(
    StandardScaler(),
    CNNClassifier(layers=("conv16", "maxpool", "dense64"), input_shape=(8, 8, 1), padding="same",
                  dropout="after_last_pool", dropout_rate=0.25, dropout_kind="element", batch_size=32,
                  max_iter=EPOCHS, n_threads=1, random_state=0),
)
pipe.fit(X_train, y_train)
print(f"pipeline test accuracy: {pipe.score(X_test, y_test):.4f}")

with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "pipeline.joblib")
    joblib.dump(pipe, path)
    restored = joblib.load(path)
same = np.array_equal(restored.predict_proba(X_test), pipe.predict_proba(X_test))
print(f"saved and restored {os.path.basename(path)}; restored pipeline predicts identically: {same}")
if not same:
    raise SystemExit("the restored pipeline predicts differently")
