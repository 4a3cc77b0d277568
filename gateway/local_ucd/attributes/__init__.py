"""Attributes (§4.7): default attribute names, writing attributes, reading attribute maps."""
