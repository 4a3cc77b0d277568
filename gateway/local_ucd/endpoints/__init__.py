"""One module per REST endpoint handler of the local UCD (§3, §5)."""
