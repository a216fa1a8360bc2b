"""Register plugins: one package per register, each discovered through the `stamdata.registers` entry points."""
