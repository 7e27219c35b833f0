"""dlatoms: reproducible atomic experiments on the details of training neural networks."""

__version__ = "0.1.0"
