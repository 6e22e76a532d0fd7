"""Causal modules: confounder dictionary, CCIM, CLEF, CausalMER and their shared algebra."""
