"""The gateway's side of the UCD REST API: the only package that knows its wire format.

``paths`` (endpoints), ``rules`` (identifier and name checks, shared with the local UCD),
``names`` (attribute and parameter names), ``requests`` / ``answers`` / ``envelope`` /
``error_keys`` (typed bodies and their parsing), ``times`` (RFC 3339 and epoch seconds),
``batching`` (E1/E4 size limits), ``client`` (the typed calls and the status-to-error
mapping) and ``transport`` (the pooled ``httpx.AsyncClient`` they run on). Import from
those modules directly.
"""
