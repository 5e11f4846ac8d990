"""Errors the CLI catches, in a module that imports nothing heavy.

Why apart from sagetui/config.py: config.py imports pydantic and every
package's spec (~0.3 s); a command module needs the exception class at
import time to catch it, and `sagetui --help` imports every command module.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config that cannot run. The message names the file and the field."""
