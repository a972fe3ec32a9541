"""Access/refresh token pairs for Django API clients: see README.md and docs/."""

__version__ = "0.1.0"
