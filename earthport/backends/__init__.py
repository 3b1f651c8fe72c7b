"""Framework backends, one package each: everything that imports torch or MindSpore to run a model."""
