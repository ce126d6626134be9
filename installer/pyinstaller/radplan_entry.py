"""Entry point of the frozen (PyInstaller) RadPlan bundle: the same CLI as the `radplan` console script."""

from app.cli.main import main

if __name__ == "__main__":
    main()
