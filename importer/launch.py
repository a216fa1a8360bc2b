"""The entry point of `stamdata-importer` and `python -m importer`: stop signals first, then the rest."""

from importer.signals import catch_early


def main() -> None:
    catch_early()
    from importer.cli import main as cli_main  # heavy: loaded once a stop signal can no longer kill us

    cli_main()
