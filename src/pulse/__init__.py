"""pulse: the PULSE machine-unlearning benchmark for multimodal models."""

__version__ = "0.1.0"
