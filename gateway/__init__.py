"""The HTTP edge: settings, the ASGI app and its lifespan, the CLI."""
