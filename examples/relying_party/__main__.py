"""Run the demo relying party: ``python -m examples.relying_party``.

Binds 127.0.0.1:5001; ``DEMO_RP_HOST`` / ``DEMO_RP_PORT`` override that, and the default redirect
URIs follow ``DEMO_RP_PORT``. Other settings come from ``DEMO_RP_*`` variables (see
``settings.py``); ``DEMO_RP_CLIENT_SECRET`` is required to sign in.

Browse it as http://localhost:5001, the host name of the registered redirect URI: the session
cookie carrying state, nonce and PKCE verifier is per host name, so 127.0.0.1 would lose it
(``/login`` therefore moves the browser to the redirect URI's host first).
"""

from __future__ import annotations

import os
import sys

from . import create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001


def main() -> None:
    """Start the development server."""
    host = os.environ.get("DEMO_RP_HOST", DEFAULT_HOST)
    port = int(os.environ.get("DEMO_RP_PORT", str(DEFAULT_PORT)))
    # A non-default port moves the default redirect URIs with it (the IdP must list them).
    app = create_app({
        "REDIRECT_URI": os.environ.get("DEMO_RP_REDIRECT_URI")
        or f"http://localhost:{port}/callback",
        "POST_LOGOUT_REDIRECT_URI": os.environ.get("DEMO_RP_POST_LOGOUT_REDIRECT_URI")
        or f"http://localhost:{port}/",
    })
    if not app.config["CLIENT_SECRET"]:
        print("warning: DEMO_RP_CLIENT_SECRET is not set; sign-in will not work.",
              file=sys.stderr)
    print(f"Demo relying party serving http://localhost:{port}/ "
          f"(signing in at {app.config['ISSUER']})", flush=True)
    app.run(host=host, port=port)


if __name__ == "__main__":
    main()
