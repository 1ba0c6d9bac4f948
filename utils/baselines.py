"""Traditional image classifiers, to measure what convolutional layers add.

Three methods that do *not* learn convolution kernels, all trained on the same split as the CNN:

* :func:`logistic_regression_on_pixels` - a linear model on the raw pixel values;
* :func:`mlp_on_pixels` - a dense network (one hidden layer) on the raw pixel values;
* :func:`hog_linear` - hand-made features (histograms of oriented gradients, HOG) + a linear model:
  the classic pipeline in which a human designed the "filters".

Every function takes images as ``(N, 1, H, W)`` (NCHW, as the CNN) or ``(N, H, W)`` float arrays
and integer labels ``(N,)``, and returns a :class:`BaselineResult` with the test accuracy and the
wall time of training (which depends on the machine; the accuracy does not: all are seeded).

Chapter 08 (textures) adds cheap texture features - :func:`intensity_statistics` and
:func:`lbp_histograms` (local binary patterns) - and :func:`fit_tuned`, the one recipe every
classifier on fixed features follows there (classical baselines and linear probes alike):
features standardised with a reference set, the regularisation ``C`` chosen on validation data.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

LOGISTIC_MAX_ITER = 2000  # lbfgs needs a few hundred iterations on unscaled 8x8 pixels; 2000 leaves room


@dataclass(frozen=True)
class BaselineResult:
    """One trained baseline.

    Attributes:
        name: the method.
        accuracy: fraction of test images classified correctly, in [0, 1].
        train_seconds: wall time of fitting (feature extraction included), machine dependent.
        n_params: number of learned numbers in the fitted model.

    Used first in chapter 09.
    """
    name: str
    accuracy: float
    train_seconds: float
    n_params: int


def as_images(x: np.ndarray) -> np.ndarray:
    """``(N, 1, H, W)`` or ``(N, H, W)`` -> ``(N, H, W)`` float64 (single-channel images only).

    Used first in chapter 08.
    """
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"expected single-channel images (N, 1, H, W) or (N, H, W), got shape {x.shape}")
    return x.astype(np.float64)


def flatten_pixels(x: np.ndarray) -> np.ndarray:
    """Images ``(N, 1, H, W)`` or ``(N, H, W)`` -> one row of ``H*W`` pixel values per image, ``(N, H*W)``.

    Used first in chapter 09.
    """
    images = as_images(x)
    return images.reshape(len(images), -1)


def hog_features(x: np.ndarray, cell: int = 2, orientations: int = 9) -> np.ndarray:
    """Histograms of oriented gradients: ``(N, 1, H, W)`` or ``(N, H, W)`` -> ``(N, F)``.

    Each ``cell x cell`` block of pixels becomes a histogram of its gradient directions with
    ``orientations`` bins, normalised over blocks of 2x2 cells (skimage's HOG; with the default
    2x2-pixel cells an 8x8 image gives 3*3 blocks * 4 cells * 9 bins = 324 features).

    Used first in chapter 08.
    """
    from skimage.feature import hog

    images = as_images(x)
    if min(images.shape[1:]) < 2 * cell:
        raise ValueError(f"images of size {images.shape[1:]} are too small for HOG with {cell}x{cell} cells "
                         f"(need at least {2 * cell}x{2 * cell})")
    return np.stack([hog(img, orientations=orientations, pixels_per_cell=(cell, cell),
                         cells_per_block=(2, 2), feature_vector=True) for img in images])


def intensity_statistics(x: np.ndarray) -> np.ndarray:
    """What a patch's pixel values say without their positions: ``(N, 1, H, W)`` or ``(N, H, W)`` -> ``(N, 7)``.

    The 5th, 25th, 50th, 75th and 95th percentiles of the values (the shape of the histogram)
    and the mean absolute difference between horizontal and between vertical neighbours
    (how rough the texture is).  A cheap classical baseline for textures (chapter 08).

    Used first in chapter 08.
    """
    images = as_images(x)
    flat = images.reshape(len(images), -1)
    rough_x = np.abs(np.diff(images, axis=2)).mean(axis=(1, 2))
    rough_y = np.abs(np.diff(images, axis=1)).mean(axis=(1, 2))
    return np.column_stack([*np.percentile(flat, [5, 25, 50, 75, 95], axis=1), rough_x, rough_y])


def lbp_histograms(x: np.ndarray, scales=((8, 1), (16, 2), (24, 3))) -> np.ndarray:
    """Uniform local-binary-pattern histograms: ``(N, 1, H, W)`` or ``(N, H, W)`` in [0, 1] -> ``(N, F)``.

    For every pixel, LBP compares ``P`` neighbours on a circle of radius ``R`` with the centre and
    writes down which are brighter; "uniform" codes (at most two 0/1 changes around the circle:
    edges, corners, line ends, flat spots) are kept as ``P + 1`` classes, all others are one more.
    A patch becomes the normalised histogram of its codes, one per ``(P, R)`` in ``scales``:
    ``F = sum(P + 2)`` (54 for the default scales).  No positions: a texture descriptor, the
    classic cheap baseline for textures (Ojala et al. 2002; ``skimage.feature.local_binary_pattern``).

    Used first in chapter 08.
    """
    from skimage.feature import local_binary_pattern

    images = as_images(x)
    if images.size and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"lbp_histograms expects values in [0, 1], got [{images.min():.3g}, {images.max():.3g}]")
    codes = np.round(images * 255).astype(np.uint8)     # integer images: skimage warns on floats
    histograms = []
    for points, radius in scales:
        bins = points + 2
        histograms.append(np.stack([
            np.bincount(local_binary_pattern(img, points, radius, method="uniform").astype(np.int64).ravel(),
                        minlength=bins) / img.size for img in codes]))
    return np.hstack(histograms)


C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
"""Inverse regularisation strengths tried by :func:`fit_tuned` (chapter 08)."""


def standardize_features(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Z-score features ``(N, F)`` with scikit-learn's ``StandardScaler`` fitted on ``reference``:
    subtract its mean and divide by its standard deviation, per feature (a constant feature keeps
    scale 1).  Returns ``[reference, *others]`` transformed, float64.  Use the training data (or an
    unlabelled pool of it) as the reference, never the test data.

    Used first in chapter 08.
    """
    reference = np.asarray(reference, dtype=np.float64)
    if reference.ndim != 2:
        raise ValueError(f"expected features of shape (N, F), got {reference.shape}")
    from sklearn.preprocessing import StandardScaler
    scaler = StandardScaler().fit(reference)          # constant features keep scale 1
    return [scaler.transform(np.asarray(f, dtype=np.float64)) for f in (reference, *others)]


@dataclass(frozen=True)
class Tuned:
    """A classifier fitted with its ``C`` chosen on validation data (:func:`fit_tuned`).

    Attributes:
        accuracy: fraction of the test samples classified correctly.
        C: the chosen inverse regularisation strength.
        val_accuracy: the accuracy on the validation samples at that ``C``.

    Used first in chapter 08.
    """
    accuracy: float
    C: float
    val_accuracy: float


def fit_tuned(kind: str, train, val, test, reference=None, Cs=C_GRID, seed: int = 0) -> Tuned:
    """Fit a classifier on fixed features with ``C`` chosen on validation data; score it on test.

    Args:
        kind: ``"logistic"`` (multinomial logistic regression, a linear model) or ``"rbf_svm"``
            (an SVM with a Gaussian kernel, ``gamma="scale"``).
        train, val, test: ``(features (N, F), labels (N,))``.
        reference: features ``(M, F)`` whose mean and spread standardise every part
            (:func:`standardize_features`); default the training features.  An unlabelled pool
            of training images is a good reference when very few are labelled.
        Cs: the values of ``C`` tried, each fitted on ``train`` and scored on ``val``; the best
            validation accuracy wins, ties go to the smaller ``C`` (stronger regularisation).
            Logistic regression is warm-started along ``Cs`` and stops at ``tol=1e-3`` (sklearn's
            default is 1e-4): fewer iterations for a dozen fits per classifier.

    Returns:
        :class:`Tuned` (test accuracy, chosen C, its validation accuracy).  The test data play
        no part in the choice.

    Used first in chapter 08.
    """
    import copy

    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC
    from threadpoolctl import threadpool_limits

    if kind not in ("logistic", "rbf_svm"):
        raise ValueError(f"kind must be 'logistic' or 'rbf_svm', got {kind!r}")
    (f_train, y_train), (f_val, y_val), (f_test, y_test) = train, val, test
    for name, (f, y) in (("train", train), ("val", val), ("test", test)):
        if len(f) != len(y):
            raise ValueError(f"{name}: {len(f)} feature rows but {len(y)} labels")
    Cs = sorted(float(C) for C in Cs)
    if not Cs or Cs[0] <= 0:
        raise ValueError(f"Cs must be positive numbers, got {Cs}")
    ref = f_train if reference is None else reference
    _, f_train, f_val, f_test = standardize_features(ref, f_train, f_val, f_test)
    best, best_val, best_model = None, -1.0, None
    with threadpool_limits(limits=1):     # one BLAS thread: faster on problems this small
        model = (LogisticRegression(max_iter=LOGISTIC_MAX_ITER, tol=1e-3, warm_start=True, random_state=seed)
                 if kind == "logistic" else None)
        for C in Cs:
            if kind == "logistic":
                model.set_params(C=C).fit(f_train, y_train)
            else:
                model = SVC(C=C, random_state=seed).fit(f_train, y_train)
            score = float(model.score(f_val, y_val))
            if score > best_val:
                best, best_val, best_model = C, score, copy.deepcopy(model)
        return Tuned(float(best_model.score(f_test, y_test)), best, best_val)


def _check_split(x_train, y_train, x_test, y_test) -> None:
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError(f"images and labels differ in length: train {len(x_train)} vs {len(y_train)}, "
                         f"test {len(x_test)} vs {len(y_test)}")


def _fit_and_score(name, make_model, features, x_train, y_train, x_test, y_test) -> BaselineResult:
    """Time ``features`` + fitting on the training split, then score on the test split."""
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    _check_split(x_train, y_train, x_test, y_test)
    # One BLAS thread: on problems this small, extra threads cost more in coordination than they
    # save (measured: up to 40x slower on a busy 2-core machine), and the timing is more stable.
    with threadpool_limits(limits=1):
        start = time.perf_counter()
        model = make_model().fit(features(x_train), np.asarray(y_train))
        seconds = time.perf_counter() - start
        accuracy = float(model.score(features(x_test), np.asarray(y_test)))
    return BaselineResult(name, accuracy, seconds, _n_params(model))


def _n_params(model) -> int:
    """Learned numbers of a fitted sklearn linear model or MLP."""
    if hasattr(model, "coefs_"):  # MLPClassifier: one weight matrix and bias vector per layer
        arrays = [*model.coefs_, *model.intercepts_]
    else:
        arrays = [model.coef_, model.intercept_]
    return int(sum(a.size for a in arrays))


def _logistic(seed: int):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(max_iter=LOGISTIC_MAX_ITER, random_state=seed)


def logistic_regression_on_pixels(x_train, y_train, x_test, y_test, seed: int = 0) -> BaselineResult:
    """A linear classifier (multinomial logistic regression) on the raw pixels.

    Used first in chapter 09.
    """
    return _fit_and_score("logistic regression on pixels", lambda: _logistic(seed), flatten_pixels,
                          x_train, y_train, x_test, y_test)


def mlp_on_pixels(x_train, y_train, x_test, y_test, hidden: int = 64, seed: int = 0,
                  max_iter: int = 300) -> BaselineResult:
    """A dense network with one hidden ReLU layer of ``hidden`` units (sklearn, Adam) on the raw pixels."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    def make():
        return MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=max_iter, random_state=seed)

    with warnings.catch_warnings():
        # Few labelled images: stopping at max_iter before the loss is flat is expected, not a problem.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _fit_and_score(f"MLP ({hidden} hidden) on pixels", make, flatten_pixels,
                              x_train, y_train, x_test, y_test)


def hog_linear(x_train, y_train, x_test, y_test, seed: int = 0, cell: int = 2) -> BaselineResult:
    """Hand-made HOG features (see :func:`hog_features`) + logistic regression.

    Used first in chapter 09.
    """
    return _fit_and_score("HOG features + logistic regression", lambda: _logistic(seed),
                          lambda x: hog_features(x, cell=cell), x_train, y_train, x_test, y_test)


def run_baselines(x_train, y_train, x_test, y_test, seed: int = 0) -> list[BaselineResult]:
    """All three baselines on one split, in the order pixels-linear, pixels-MLP, HOG-linear."""
    return [method(x_train, y_train, x_test, y_test, seed=seed)
            for method in (logistic_regression_on_pixels, mlp_on_pixels, hog_linear)]


def center_by_mass(x: np.ndarray) -> np.ndarray:
    """Shift every image so that its centre of mass (intensity-weighted mean pixel position) sits
    at the image centre: the classic preprocessing for digits (MNIST's makers centred each digit
    this way), a cheap way to give a per-pixel classifier back the alignment it needs (chapter 9).

    Args:
        x: non-negative images ``(N, 1, H, W)`` or ``(N, H, W)``.

    Returns:
        an array of the same shape, float32 (float64 if ``x`` is float64): image ``i`` moved by
        a sub-pixel offset with bilinear interpolation (``scipy.ndimage.shift``, order 1), zeros
        shifted in at the borders, so that its centre of mass is at ``((H - 1) / 2, (W - 1) / 2)``
        up to interpolation and whatever mass is pushed off the border.  An all-zero image
        stays as it is.

    Taught in chapter 09.
    """
    from scipy import ndimage

    x = np.asarray(x)
    images = as_images(x)                      # (N, H, W) float64; checks the shape
    if np.any(images < 0):
        raise ValueError("center_by_mass needs non-negative intensities (a centre of *mass*); "
                         f"got a minimum of {images.min():.3g}")
    centre = (np.array(images.shape[1:]) - 1) / 2
    centred = np.zeros_like(images)
    for i, image in enumerate(images):
        if image.sum() == 0:
            continue
        offset = centre - np.array(ndimage.center_of_mass(image))
        centred[i] = ndimage.shift(image, offset, order=1, mode="constant", cval=0.0)
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    return centred.reshape(x.shape).astype(dtype)
