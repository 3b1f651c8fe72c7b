"""The PyTorch backend: runtime, loader, losses, rollout, trainer, forecaster, bench steps."""
