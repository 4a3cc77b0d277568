"""Profile reads: needs (need), in-flight sharing (inflight), per-request loading (loader).

Imports flow one way: need -> inflight -> loader, each on top of the UCD client. Import
from those modules directly.
"""
