"""The Studio: a local web viewer of the ledger (``runledger studio``).

Needs the ``studio`` extra (Starlette, uvicorn, Jinja2). ``create_app(workspace)`` returns the
ASGI application; ``ledger.studio.server.serve`` runs it with uvicorn on 127.0.0.1.
"""

from __future__ import annotations
