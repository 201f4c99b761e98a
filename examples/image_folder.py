"""Your own images, end to end: a folder of image files -> GridSearchCV -> save -> ``minicnn predict``.

Run: ``python examples/image_folder.py`` (about a minute). It writes a folder
of digit images with Pillow, as a user's photos would come: one subfolder per
class, PNG and JPEG files, some RGB (coloured strokes) and some grayscale,
some at other sizes. ``load_image_folder`` reads it into plain arrays that
scikit-learn's model selection takes as they are; the fitted model records how
the images were read (size, colour, resize policy) and the command line reads
the files the same way. ``MINICNN_EXAMPLE_EPOCHS`` overrides the number of
epochs (the tests use 2).
"""

import os
import atexit
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from minicnn import CNNClassifier
from minicnn.datasets import load_image_folder

EPOCHS = int(os.environ.get("MINICNN_EXAMPLE_EPOCHS", 40))
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def write_digit_folder(root, per_class=40, seed=0):
    """Digits as image files: root/<name>/<i>.png|jpg; RGB or gray, 8x8, 16x16 or 12x10 pixels."""
    digits = load_digits()
    rng = np.random.default_rng(seed)
    for label, name in enumerate(NAMES):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i, index in enumerate(np.flatnonzero(digits.target == label)[:per_class]):
            gray = np.rint(digits.images[index] / 16 * 255).astype(np.uint8)
            if i % 2:   # coloured strokes on black
                image = Image.fromarray(np.dstack([gray * c for c in rng.uniform(0.5, 1.0, 3)]).astype(np.uint8))
            else:
                image = Image.fromarray(gray)
            size = [(8, 8), (16, 16), (12, 10)][i % 3]
            image = image.resize(size, Image.Resampling.NEAREST)
            image.save(os.path.join(root, name, f"{i:03d}.{'jpg' if i % 5 == 4 else 'png'}"), quality=95)


root = tempfile.mkdtemp(prefix="digit-photos-")
atexit.register(shutil.rmtree, root, ignore_errors=True)   # the folder goes when the example ends
write_digit_folder(root)
X, y, class_names = load_image_folder(root, image_size=(16, 16))   # RGB: some files have colour
labels = np.array(class_names)[y]
print(f"read {len(X)} images of shape {X.shape[1:]} in {len(class_names)} classes; "
      f"preprocessing: {X.preprocessing}")

X_train, X_test, y_train, y_test = train_test_split(X, labels, test_size=0.25, stratify=labels, random_state=0)
base = CNNClassifier(layers=("conv8", "maxpool", "conv16", "maxpool", "dense32"), padding="same",
                     learning_rate=3e-3, batch_size=32, max_iter=EPOCHS, early_stopping=True, n_threads=1,
                     random_state=0)   # early stopping: the fits end when they stop improving
search = GridSearchCV(base, {"dropout": ["none", "after_last_pool", "after_each_layer"]},
                      cv=StratifiedKFold(3, shuffle=True, random_state=0), n_jobs=2)
search.fit(X_train, y_train)
for params, mean in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
    print(f"dropout={params['dropout']:<18} cv accuracy {mean:.4f}")
best = search.best_estimator_
print(f"best: {search.best_params_}; test accuracy: {best.score(X_test, y_test):.4f}")

model = os.path.join(root, "model.npz")
best.save(model)
files = sorted(os.path.join(root, name, f) for name in class_names for f in os.listdir(os.path.join(root, name)))
done = subprocess.run([sys.executable, "-m", "minicnn", "predict", "--model", model, *files[:5], root],
                      capture_output=True, text=True)
if done.returncode != 0:   # show what the command said
    sys.exit(f"minicnn predict failed (exit {done.returncode}):\n{done.stderr}")
rows = [line.split(",") for line in done.stdout.splitlines()[1:]]
print("\n".join(done.stdout.splitlines()[:4]))
from_cli = dict((path, label) for path, label in rows)
from_estimator = dict(zip(files, best.predict(files)))   # the estimator reads files as the command does
# one row per file: the five named first and reached again through the folder keep the rows of their first spelling
print(f"command-line predictions match: {from_cli == from_estimator and len(rows) == len(files)}")
