"""Leaf utilities every layer may import: no I/O and no other Tessera package."""
