"""A model defined outside earthport, to prove the seam: two convolutions around a LayerNorm, in torch and
MindSpore, registered by its spec alone (``EARTHPORT_MODELS=seamnet=seam_model.spec:SPEC``)."""
