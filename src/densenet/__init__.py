"""densenet: DenseNet image classifiers, from the textbook's network to the paper's zoo."""

from densenet.models.registry import create_model, list_models

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models", "load"]


def load(path, map_location="cpu"):  # noqa: ANN001, ANN201 - re-exported lazily to keep `import densenet` light
    """Rebuild a trained model from a run directory (see :func:`densenet.rundir.load`)."""
    from densenet.rundir import load as _load

    return _load(path, map_location)
