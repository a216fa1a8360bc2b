"""The stamdata importer engine: knows pipelines, tables and time, nothing about a particular register."""

__version__ = "0.1.0"
