"""`python -m sagetui` — how the dashboard launches runs as child processes."""

from sagetui.cli import main

if __name__ == "__main__":
    main()
