"""The shipped recipes: one JSON file per preset, mapping one-to-one onto
:class:`~densenet.engine.config.TrainConfig` (``densenet train --preset NAME``)."""
