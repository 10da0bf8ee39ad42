"""The neural forecaster: features (`features`), the network (`model`), its baselines (`baselines`) and
the walk-forward evaluation with conformal intervals (`evaluation`). scikit-learn and statsmodels are
imported inside the functions that fit, never when this package is imported."""

from nt_mcp.domain.forecast.evaluation import (
    Evaluation,
    ForecastStep,
    Stopped,
    final_model,
    forecast_path,
    walk_forward,
)
from nt_mcp.domain.forecast.model import FittedModel, ModelConfig, fit_model

__all__ = [
    "Evaluation",
    "FittedModel",
    "ForecastStep",
    "ModelConfig",
    "Stopped",
    "final_model",
    "fit_model",
    "forecast_path",
    "walk_forward",
]
