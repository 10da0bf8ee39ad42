"""The neural forecaster: a feed-forward network (scikit-learn's ``MLPRegressor``) on lagged log returns.

Default architecture, from the seed's LSTM 50-50-25-1 with a 60-bar lookback and a 5-bar horizon:
hidden layers (50, 50, 25) with ReLU, 60 lags in, 5 outputs (direct multi-step: the next 5 log returns),
Adam, L2 penalty ``alpha``, early stopping on a 10 % validation split *of the training window*, seeded
(``random_state``), so the same data and configuration give the same weights.

Scaling: features and targets are standardised with the mean and standard deviation of the **training
window only** (a zero deviation counts as 1); predictions are mapped back with the targets' scale.

Persistence (`FittedModel.to_blob` / `from_blob`): a versioned blob this server writes itself --
``MAGIC`` + NumPy's ``.npz`` of plain float arrays (weights, biases, scalers) and a JSON header -- read
back with ``allow_pickle=False``, so loading never runs code from the blob. The forward pass at
forecast time is NumPy (`FittedModel.predict`), equal to ``MLPRegressor.predict`` (a test checks), so a
stored model forecasts without importing scikit-learn.
"""

from __future__ import annotations

import io
import itertools
import json
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nt_mcp.domain.errors import DomainValueError

FloatArray = npt.NDArray[np.float64]
MAGIC = b"NTMCP-MLP-FORECASTER\n"
BLOB_VERSION = 1
MAX_LAGS = 250
MAX_HORIZON = 60
MAX_UNITS = 256
MAX_LAYERS = 4
MAX_ITER = 1000
# One fit may cost at most this many sample x epoch x weight operations (about 6 s on one core of a
# 2-CPU machine at ~4e-10 s each): bigger networks, more epochs or more samples are refused up front,
# since a fit in progress cannot be interrupted.
MAX_FIT_WORK = 1.5e10


@dataclass(frozen=True)
class ModelConfig:
    """What to fit. ``lags`` is the lookback (bars of returns in), ``horizon`` the steps out."""

    lags: int = 60
    horizon: int = 5
    hidden_layers: tuple[int, ...] = (50, 50, 25)
    max_iter: int = 200
    alpha: float = 1e-4
    learning_rate_init: float = 1e-3
    early_stopping: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.lags <= MAX_LAGS:
            raise DomainValueError("lookback", f"must be between 2 and {MAX_LAGS} bars, got {self.lags}")
        if not 1 <= self.horizon <= MAX_HORIZON:
            raise DomainValueError("horizon", f"must be between 1 and {MAX_HORIZON} bars, got {self.horizon}")
        if self.horizon >= self.lags:
            raise DomainValueError("horizon", f"horizon ({self.horizon}) must be shorter than lookback ({self.lags})")
        if not 1 <= len(self.hidden_layers) <= MAX_LAYERS or not all(
            1 <= units <= MAX_UNITS for units in self.hidden_layers
        ):
            raise DomainValueError(
                "hidden_layers", f"1 to {MAX_LAYERS} layers of 1 to {MAX_UNITS} units, got {list(self.hidden_layers)}"
            )
        if not 1 <= self.max_iter <= MAX_ITER:
            raise DomainValueError("max_iter", f"must be between 1 and {MAX_ITER}, got {self.max_iter}")
        if not (0 <= self.alpha <= 10 and 0 < self.learning_rate_init <= 1):
            raise DomainValueError("alpha", "alpha must be in [0, 10] and learning_rate_init in (0, 1]")

    @property
    def weights_count(self) -> int:
        """Weights and biases of the network: ``sum (inputs + 1) * outputs`` over its layers."""
        sizes = [self.lags, *self.hidden_layers, self.horizon]
        return sum((a + 1) * b for a, b in itertools.pairwise(sizes))

    def fit_work(self, samples: int) -> float:
        """The cost bound of one fit on ``samples`` samples: samples x max_iter x weights."""
        return float(samples) * self.max_iter * self.weights_count

    def check_work(self, samples: int) -> None:
        """Refuse (naming ``max_iter``) a fit whose cost bound exceeds `MAX_FIT_WORK`."""
        if self.fit_work(samples) > MAX_FIT_WORK:
            raise DomainValueError(
                "max_iter",
                f"{samples} samples x {self.max_iter} epochs x {self.weights_count} weights is more than one fit may "
                f"cost ({MAX_FIT_WORK:.1e}): lower max_iter, hidden_layers, lookback or bars",
            )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden_layers"] = list(self.hidden_layers)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**{**data, "hidden_layers": tuple(data["hidden_layers"])})


@dataclass(frozen=True)
class FittedModel:
    config: ModelConfig
    coefs: list[FloatArray]
    intercepts: list[FloatArray]
    x_mean: FloatArray
    x_scale: FloatArray
    y_mean: FloatArray
    y_scale: FloatArray
    n_iter: int
    train_samples: int
    extra: dict[str, Any] = field(default_factory=dict)
    residuals: FloatArray | None = None  # |walk-forward errors| of c_k (rows = origins): conformal intervals

    def predict(self, features: FloatArray) -> FloatArray:
        """Per-step log returns for each row of ``features`` (lagged returns, oldest first)."""
        a = (np.atleast_2d(np.asarray(features, dtype=np.float64)) - self.x_mean) / self.x_scale
        last = len(self.coefs) - 1
        for index, (weights, bias) in enumerate(zip(self.coefs, self.intercepts, strict=True)):
            a = a @ weights + bias
            if index < last:
                a = np.maximum(a, 0.0)  # ReLU on hidden layers, identity on the output
        return a * self.y_scale + self.y_mean

    def to_blob(self) -> bytes:
        header = {
            "format": "nt-mcp/mlp-forecaster",
            "version": BLOB_VERSION,
            "config": self.config.as_dict(),
            "n_iter": self.n_iter,
            "train_samples": self.train_samples,
            "layers": len(self.coefs),
            "extra": self.extra,
        }
        arrays: dict[str, Any] = {
            "x_mean": self.x_mean,
            "x_scale": self.x_scale,
            "y_mean": self.y_mean,
            "y_scale": self.y_scale,
        }
        for i, (w, b) in enumerate(zip(self.coefs, self.intercepts, strict=True)):
            arrays[f"coef_{i}"] = np.asarray(w, dtype=np.float64)
            arrays[f"intercept_{i}"] = np.asarray(b, dtype=np.float64)
        buffer = io.BytesIO()
        if self.residuals is not None:
            arrays["residuals"] = np.asarray(self.residuals, dtype=np.float64)
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        np.savez(buffer, **arrays)
        return MAGIC + buffer.getvalue()

    @classmethod
    def from_blob(cls, blob: bytes) -> FittedModel:
        """Read a blob `to_blob` wrote; anything else raises DomainValueError (argument ``model``)."""
        if not blob.startswith(MAGIC):
            raise DomainValueError("model", "not a forecaster blob written by this server")
        try:
            with np.load(io.BytesIO(blob[len(MAGIC) :]), allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode())
                if header.get("format") != "nt-mcp/mlp-forecaster" or header.get("version") != BLOB_VERSION:
                    raise DomainValueError("model", f"unsupported blob version {header.get('version')!r}")
                layers = int(header["layers"])
                return cls(
                    config=ModelConfig.from_dict(header["config"]),
                    coefs=[np.array(data[f"coef_{i}"], dtype=np.float64) for i in range(layers)],
                    intercepts=[np.array(data[f"intercept_{i}"], dtype=np.float64) for i in range(layers)],
                    x_mean=np.array(data["x_mean"]),
                    x_scale=np.array(data["x_scale"]),
                    y_mean=np.array(data["y_mean"]),
                    y_scale=np.array(data["y_scale"]),
                    n_iter=int(header["n_iter"]),
                    train_samples=int(header["train_samples"]),
                    extra=dict(header.get("extra") or {}),
                    residuals=np.array(data["residuals"]) if "residuals" in data.files else None,
                )
        except (ValueError, KeyError, OSError, TypeError, EOFError, zipfile.BadZipFile) as error:
            raise DomainValueError("model", f"unreadable forecaster blob: {type(error).__name__}") from None


def _scale(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def fit_model(features: FloatArray, targets: FloatArray, config: ModelConfig) -> FittedModel:
    """Fit the network on these samples only (scalers from them too). Deterministic for a given seed."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if x.shape[0] < 10:
        raise DomainValueError("bars", f"{x.shape[0]} training samples; at least 10 are needed")
    config.check_work(x.shape[0])
    x_mean, x_scale = _scale(x)
    y_mean, y_scale = _scale(y)
    # early stopping needs a validation split of at least 2 samples
    early = config.early_stopping and x.shape[0] >= 50
    network = MLPRegressor(
        hidden_layer_sizes=config.hidden_layers,
        activation="relu",
        solver="adam",
        alpha=config.alpha,
        learning_rate_init=config.learning_rate_init,
        max_iter=config.max_iter,
        early_stopping=early,
        validation_fraction=0.1,
        n_iter_no_change=10,
        random_state=config.seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scaled_y = (y - y_mean) / y_scale
        # one horizon: a column vector, which sklearn flattens itself, with a DataConversionWarning on stderr
        network.fit(
            (x - x_mean) / x_scale, scaled_y.ravel() if scaled_y.ndim == 2 and scaled_y.shape[1] == 1 else scaled_y
        )
    return FittedModel(
        config=config,
        coefs=[np.asarray(w, dtype=np.float64) for w in network.coefs_],
        intercepts=[np.asarray(b, dtype=np.float64) for b in network.intercepts_],
        x_mean=x_mean,
        x_scale=x_scale,
        y_mean=y_mean,
        y_scale=y_scale,
        n_iter=int(network.n_iter_),
        train_samples=int(x.shape[0]),
    )
