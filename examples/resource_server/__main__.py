"""Run the demo resource server: ``python -m examples.resource_server``.

Binds 127.0.0.1:5002; ``DEMO_RS_HOST`` / ``DEMO_RS_PORT`` override that. ``DEMO_RS_ISSUER``
names the IdP whose access tokens it accepts (default http://localhost:5000) and
``DEMO_RS_AUDIENCE`` (required) the ``aud`` they must carry: the IdP's
``tokens.access_token_audience``, or by default the client id of the RP that gets the tokens
(``demo-rp`` for ``idp demo``).
"""

from __future__ import annotations

import os

from . import create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5002


def main() -> None:
    """Start the development server."""
    host = os.environ.get("DEMO_RS_HOST", DEFAULT_HOST)
    port = int(os.environ.get("DEMO_RS_PORT", str(DEFAULT_PORT)))
    app = create_app()
    print(f"Demo resource server serving http://localhost:{port}/ "
          f"(accepting access tokens from {app.config['IDP_ISSUER']})", flush=True)
    app.run(host=host, port=port)


if __name__ == "__main__":
    main()
