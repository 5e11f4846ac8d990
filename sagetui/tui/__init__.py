"""sagetui/tui: the Textual dashboard — the only package that imports textual.

The version is shown on the help screen (bug reports need it); importing it
here is also the import the layering contract pins to this package.
"""

from textual import __version__ as TEXTUAL_VERSION

__all__ = ["TEXTUAL_VERSION"]
