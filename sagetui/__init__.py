"""sagetui."""
