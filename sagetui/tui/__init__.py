"""sagetui/tui."""
