"""Model inference: the shared preprocessing contract and the `Classifier` implementations."""
