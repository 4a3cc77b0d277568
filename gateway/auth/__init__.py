"""Who is calling: principals from API keys or JWTs, their scopes, and what is PII.

Nothing is re-exported: import from the owning module (``scopes``, ``principal``,
``api_keys``, ``jwt_tokens``, ``authenticator``, ``middleware``, ``pii``).
"""
