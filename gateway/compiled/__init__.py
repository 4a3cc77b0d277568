"""The compiled execution path: most traffic is a handful of document shapes.

Per document (by its text, after the request limits, gateway/limits.py) everything
that does not depend on the variables is kept: the validated document, its operation's
fields flattened out of their fragments (``plan.py``), the push-down need when no
variable or clock changes it, and the serializers that write the answer straight from
the UCD's profile answer (``serializer.py``). ``execution.py`` runs a plan, and hands
anything else to graphql-core; ``can_compile`` is the one predicate that decides per
request (the seam for per-field checks). The answer is byte for byte graphql-core's
(tests/gateway/test_compiled.py compares both on random documents).
``UCD_GATEWAY_COMPILED_EXECUTION=false`` turns the path off.
"""

from gateway.compiled.execution import CompiledExecution, can_compile, compiled_execution

__all__ = ["CompiledExecution", "can_compile", "compiled_execution"]
