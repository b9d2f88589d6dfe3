"""Strawberry schema extensions: one cross-cutting concern per module."""
