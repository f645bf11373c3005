"""``python -m fusionlab.experiments`` is ``python -m fusionlab experiment``."""

from fusionlab.experiments.cli import main

if __name__ == "__main__":
    main()
