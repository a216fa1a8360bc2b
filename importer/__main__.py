"""`python -m importer` is the same as the `stamdata-importer` console script."""

from importer.cli import main

main()
