"""Model zoo: the shared DenseNet parts, the networks built from them, and the registry."""

from densenet.models import resnet, zoo  # noqa: F401  (registers the builders)
from densenet.models.densenet import DenseNet
from densenet.models.layers import DenseBlock, DenseLayer, Transition
from densenet.models.profile import count_flops, count_params, model_table, summarize
from densenet.models.registry import ModelInfo, create_model, list_models, model_info, register_model
from densenet.models.resnet import BasicBlock, Bottleneck, ResNet
from densenet.models.weights import convert_legacy_keys, load_torchvision_state_dict

__all__ = ["BasicBlock", "Bottleneck", "DenseBlock", "DenseLayer", "DenseNet", "ModelInfo", "ResNet", "Transition",
           "convert_legacy_keys", "count_flops", "count_params", "create_model", "list_models",
           "load_torchvision_state_dict", "model_info", "model_table", "register_model", "summarize"]
