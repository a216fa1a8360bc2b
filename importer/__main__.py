"""`python -m importer` is the same as the `stamdata-importer` console script."""

from importer.launch import main

main()
