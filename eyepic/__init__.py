"""Eyepic core: what training and serving must agree on.

The taxonomy, the color palette, image decoding/preprocessing, the settings
object, the plain data types that cross module boundaries and the export
contract (``exports``). The lowest layer: it imports no other Eyepic
package. Nothing here loads a model or touches the network at import time.
"""

__version__ = "0.1.0"
