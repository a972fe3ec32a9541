"""The benchmark project: this app and its three peers side by side (``make bench``)."""
