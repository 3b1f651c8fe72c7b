"""The MindSpore backend: runtime, AdamW, loader, ops, trainer, forecaster, bench steps, export."""
