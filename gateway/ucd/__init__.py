"""The gateway's side of the UCD REST API.

``client`` holds the typed calls and the status-to-error mapping; ``transport`` builds
the pooled ``httpx.AsyncClient`` they run on. Import from those modules directly.
"""
