"""The local UCD: an in-process implementation of Insider's UCD REST contract.

Rooms (subpackages), each about one part of the contract:

* ``endpoints/``  one module per REST endpoint handler (E1-E10, segments, attribute
  types, export downloads);
* ``identity/``   identifiers, identity resolution and merging, the user a request names,
  erasure;
* ``attributes/`` default attribute names, writing attributes, reading attribute maps;
* ``events/``     event checks and storage, parameters, timestamps, digests, event queries;
* ``exports/``    segments, export jobs, the export worker and the files it writes;
* ``openapi/``    the OpenAPI document served at ``/openapi.json``;
* ``store/``      the SQLite store and JSON value semantics.

App-wide plumbing stays here: ``app`` (routing and the request pipeline), ``config``,
``services`` (what a handler gets), ``http`` (responses and errors), ``auth``, ``bodies``,
``ratelimit``, ``faults``, ``hooks`` and ``callbacks`` (outbound POSTs), ``timefmt``, and
``transport`` (reaching the app in-process over httpx).

Nothing here imports the rest of ``gateway`` but ``gateway.ucd.rules`` and ``gateway.ucd.names``:
the identifier rules and the names are the contract's, and one table of each keeps the
gateway and the local UCD agreeing.
"""
