"""One process for ``bench/callgrind_new_document.py`` to run under callgrind.

``python bench/_callgrind_stages.py STAGES N``: N new documents (the ``new`` case of
``bench/_callgrind_worker.py``: ``{ rI: user(key: {uuid: "u-I"}) { name email } }``),
each taken through the first STAGES of the per-document work the gateway does before
it executes a document, as the app does it (the default settings' guards):

1. ``text``: ``document_text.check_text``, before parsing;
2. ``parse``: graphql-core's ``parse`` with the token limit;
3. ``validation``: the app's ``ValidationCache.validate`` (the document limits, then
   graphql-core's and strawberry's rules; or, where it has one, the cache's answer);
4. ``plan``: ``compiled.plan.compile_operation``.

The difference between the counts of STAGES = k and k - 1 is what stage k costs N
documents; the set-up (imports, the schema, making the texts) is in every run.
"""

from __future__ import annotations

import sys

from graphql import parse

from gateway.api.schema import build_schema
from gateway.api.strawberry_internals import graphql_core_schema
from gateway.compiled.plan import compile_operation
from gateway.document_text import check_text
from gateway.limits import RequestGuards, schema_extensions
from gateway.settings import Settings

STAGES = ("text", "parse", "validation", "plan")


def main(stages: int, count: int) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    (guards,) = schema_extensions(settings)
    assert isinstance(guards, RequestGuards)
    schema = graphql_core_schema(build_schema())
    rules = guards._rules
    cache = guards.validation_cache
    texts = [
        f'{{ r{i}: user(key: {{uuid: "u-{i % 50}"}}) {{ name email }} }}' for i in range(count)
    ]
    for text in texts:
        if stages >= 1:
            check_text(text, max_tokens=settings.max_tokens)
        if stages >= 2:
            document = parse(text, max_tokens=settings.max_tokens)
        if stages >= 3:
            assert cache.validate(schema, document, text, rules) == []
        if stages >= 4:
            assert compile_operation(schema, document, None) is not None


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
