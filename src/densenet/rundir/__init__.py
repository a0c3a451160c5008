"""The run directory: its file names, atomic writes, the model card, the weights and the resume rules.

Every module that writes into a run directory goes through here, so every file gets the same
durable atomic write and the mode ``open()`` would give (``0666 & ~umask``).

- :mod:`~densenet.rundir.files`: the file names and the atomic writer.
- :mod:`~densenet.rundir.card`: ``model.json``, the model card.
- :mod:`~densenet.rundir.weights`: ``model.safetensors`` with its card; :func:`load`.
- :mod:`~densenet.rundir.resume`: new or resumed run, its configuration and its folder name.

A run directory holds ``config.json``, ``metrics.jsonl``, ``summary.json``, ``curves.png``,
``model.safetensors``, ``model.json``, ``checkpoints/{last,best}.pt`` (with ``--keep-checkpoints K``
also ``checkpoints/epoch-NNNN.pt`` of the last K epochs) and, after
``densenet evaluate``, ``evaluation.json`` and ``confusion_matrix.png`` (see ``docs/interface.md``).
"""

from densenet.rundir.card import FORMAT_VERSION, ModelCard, Preprocessing, model_files, read_card, write_card
from densenet.rundir.files import (
    BEST,
    CHECKPOINT_DIR,
    CONFIG_FILE,
    CONFUSION_PNG,
    CURVES_FILE,
    EPOCH_CHECKPOINT,
    EPOCH_CHECKPOINT_GLOB,
    EVALUATION_FILE,
    LAST,
    META_FILE,
    METRICS_FILE,
    ROC_PNG,
    SUMMARY_FILE,
    TEMP_GLOB,
    WEIGHTS_FILE,
    atomic_file,
    atomic_path,
    atomic_write_bytes,
    current_umask,
    fsync_path,
    write_json,
)
from densenet.rundir.resume import (
    DEFAULT_PRESET,
    RESUME_OVERRIDES,
    RunPlan,
    default_run_dir,
    has_checkpoint,
    plan_run,
    read_config,
    resume_config,
)
from densenet.rundir.weights import load, save_model

__all__ = ["BEST", "CHECKPOINT_DIR", "CONFIG_FILE", "CONFUSION_PNG", "CURVES_FILE", "DEFAULT_PRESET",
           "EPOCH_CHECKPOINT", "EPOCH_CHECKPOINT_GLOB", "EVALUATION_FILE", "FORMAT_VERSION", "LAST", "META_FILE",
           "METRICS_FILE", "RESUME_OVERRIDES", "ROC_PNG", "SUMMARY_FILE", "TEMP_GLOB", "WEIGHTS_FILE", "ModelCard",
           "Preprocessing", "RunPlan", "atomic_file", "atomic_path", "atomic_write_bytes", "current_umask",
           "default_run_dir", "fsync_path", "has_checkpoint", "load", "model_files", "plan_run", "read_card",
           "read_config", "resume_config", "save_model", "write_card", "write_json"]
