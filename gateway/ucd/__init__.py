"""The gateway's side of the UCD REST API: the only package that knows its wire format.

``paths`` (endpoints), ``rules`` (identifier and name checks, shared with the local UCD),
``names`` (attribute and parameter names), ``requests`` / ``answers`` / ``envelope`` /
``error_keys`` (typed bodies and their parsing), ``times`` (RFC 3339 and epoch seconds),
``batching`` (E1/E4 size limits), ``client`` (the typed calls and the status-to-error
mapping), ``transport`` (the pooled ``httpx.AsyncClient`` they run on),
``local_segments`` (the local UCD's own segment endpoint) and ``demo_data`` (what
``ucd-gateway seed`` sends). Import from those modules directly.
"""
