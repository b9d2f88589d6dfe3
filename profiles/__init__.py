"""Visitor profiles in MongoDB: reads within a time budget, event updates, audiences."""
