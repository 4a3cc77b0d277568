"""Who a request is about: identifiers, lookup, identity resolution and merging, erasure."""
