"""GraphCast (Lam et al. 2023): the multimesh graphs (numpy), the config and the PyTorch / MindSpore models."""
