"""Where the frameworks meet: PyTorch <-> MindSpore conversion, op adapters and parity checks."""
