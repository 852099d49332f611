"""DermaLink training: HAM10000 data handling, MobileNetV2 training, evaluation and export.

Importing this package (and :mod:`training.cli`) needs only the base dependencies; TensorFlow and
the other heavy packages of the ``train`` extra are imported inside the functions that use them.
"""

LABELS: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
MALIGNANT: tuple[str, ...] = ("mel", "bcc", "akiec")
MODEL_NAME = "ham10000_mobilenetv2"

__all__ = ["LABELS", "MALIGNANT", "MODEL_NAME"]
