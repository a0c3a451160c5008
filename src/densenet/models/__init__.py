"""Model zoo: the shared DenseNet parts, the networks built from them, and the registry.

The models know only what they compute; how they are run (compiled, in mixed precision) is the engine's.

- :mod:`~densenet.models.layers`: the one dense layer, dense block and transition.
- :mod:`~densenet.models.recompute`: activation checkpointing that updates BatchNorm statistics once.
- :mod:`~densenet.models.densenet`: the one :class:`DenseNet` class; :mod:`~densenet.models.resnet`: the baselines.
- :mod:`~densenet.models.zoo`: the registered DenseNets, as numbers; :mod:`~densenet.models.registry`:
  ``create_model``, ``list_models``, ``model_info``.
- :mod:`~densenet.models.common`: argument checks, the classifier head, the weight initializations.
- :mod:`~densenet.models.weights`: torchvision checkpoints (current and legacy keys).
- :mod:`~densenet.models.pretrained`: reading a weights file or run directory and fitting it into a model.
- :mod:`~densenet.models.shapes`, :mod:`~densenet.models.profile`: stage shapes, parameters, FLOPs, summaries.
"""

from densenet.models import resnet, zoo  # noqa: F401  (registers the builders)
from densenet.models.densenet import DenseNet
from densenet.models.layers import DenseBlock, DenseLayer, Transition
from densenet.models.pretrained import Weights, load_weights, read_weights
from densenet.models.profile import count_flops, count_params, model_table, summarize
from densenet.models.registry import ModelInfo, create_model, list_models, model_info, register_model
from densenet.models.resnet import BasicBlock, Bottleneck, ResNet
from densenet.models.weights import convert_legacy_keys, load_torchvision_state_dict

__all__ = ["BasicBlock", "Bottleneck", "DenseBlock", "DenseLayer", "DenseNet", "ModelInfo", "ResNet", "Transition",
           "Weights", "convert_legacy_keys", "count_flops", "count_params", "create_model", "list_models",
           "load_torchvision_state_dict", "load_weights", "model_info", "model_table", "read_weights",
           "register_model", "summarize"]
