"""The engine: stages, training, evaluation and the run that ties them together."""
