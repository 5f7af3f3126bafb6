"""aspl: Active Self-Paced Learning for cost-effective face identification."""

__version__ = "0.1.0"
