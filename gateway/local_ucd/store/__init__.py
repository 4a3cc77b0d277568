"""Persistence: the SQLite store (§4.10) and how stored JSON values compare (§2.4)."""
