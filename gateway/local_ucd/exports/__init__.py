"""Exports (§3.3, §5.5): segments, export jobs, the export worker and the files it writes."""
