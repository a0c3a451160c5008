"""Model zoo: the shared DenseNet parts, the networks built from them, and the registry."""

from densenet.models import zoo  # noqa: F401  (registers the builders)
from densenet.models.densenet import DenseNet
from densenet.models.layers import DenseBlock, DenseLayer, Transition
from densenet.models.registry import create_model, list_models, model_info, register_model

__all__ = ["DenseBlock", "DenseLayer", "DenseNet", "Transition", "create_model", "list_models", "model_info",
           "register_model"]
