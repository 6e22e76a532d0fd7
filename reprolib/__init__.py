"""reprolib: causal debiasing for emotion recognition (CCIM, CLEF, CausalMER), as a course.

The notebooks in ``notebooks/`` tell the story; everything they run lives here.
"""

__version__ = "0.1.0"
