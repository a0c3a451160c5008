"""Saving, loading and exporting trained models."""

from densenet.export.weights import ModelCard, Preprocessing, load, read_card, save_model

__all__ = ["ModelCard", "Preprocessing", "load", "read_card", "save_model"]
