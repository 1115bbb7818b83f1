"""``python -m jobstore.cli``: the same as the ``jobstore`` console script."""

from .app import main

if __name__ == "__main__":
    main()
