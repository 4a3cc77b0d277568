"""Events (§4.8): checks and storage, parameters, timestamps, digests, event queries."""
