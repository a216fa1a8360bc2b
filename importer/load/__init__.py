"""Loading: one dataset from parse to both databases — pipeline, temporal delta, bulk paths, snapshot, import
status, register locks, migrations, the inbox on disk — and the register plugin contract it runs."""
