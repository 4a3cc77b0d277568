"""Shared state: what several gateway replicas must agree on, behind one interface.

A replica keeps nothing another replica may need in its own memory alone: export jobs
(any replica answers ``exportJob`` and accepts the UCD's webhook) and the rate-limit
counters (every replica counts against one limit) go through a
``StateStore`` (``protocol.py``), whose backend ``backend.py`` chooses from the settings:

* ``memory.py``: in this process (the default, one process as in ``make run``), its
  records also kept in a SQLite file in the local data folder so a restart does not
  forget them;
* ``redis.py``: Redis or Valkey at ``UCD_GATEWAY_REDIS_URL``, shared by every replica;
  an outage is ``STATE_UNAVAILABLE`` within the operation's deadline, never a hang.
"""
