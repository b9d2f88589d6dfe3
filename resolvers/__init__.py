"""GraphQL surface: Strawberry types, queries and mutations, kept thin."""
