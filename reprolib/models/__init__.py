"""Backbones and models. Every classifier takes a batch dict and exposes ``features`` and ``classifier``."""
