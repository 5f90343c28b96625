"""ftbench: which fine-tuning strategy for a MACE foundation model, at what robustness cost."""

__version__ = "0.1.0"
