"""Tests of densenet.models."""
