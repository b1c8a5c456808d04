"""Duplicate appeals and merges (并单): the in-memory duplicate index, the per-database detector,
the merge rules and their tables."""
