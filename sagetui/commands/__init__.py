"""One click command (or group) per module; sagetui/cli.py registers them."""
