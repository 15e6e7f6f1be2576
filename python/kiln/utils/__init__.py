"""kiln.utils: helpers around the framework (``pytorch_converter``: PyTorch model
source -> kiln source)."""
