"""Eyepic core: what training and serving must agree on.

The taxonomy, the color palette, image decoding/preprocessing, the settings
object and the plain data types that cross module boundaries. Nothing here
loads a model or touches the network at import time.
"""

__version__ = "0.1.0"
