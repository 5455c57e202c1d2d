"""The container's health check: exit 0 when the server's ``/readyz`` answers 200.

Run by the image's HEALTHCHECK (and so by compose). It follows the server's settings: the port
from ``GLINT_PORT`` and https when ``GLINT_SSL_CERTFILE`` is set. The certificate is not
verified: this asks the process in the same container whether it is ready, on loopback.
"""

import os
import ssl
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("GLINT_PORT", "8000")
    context = None
    scheme = "http"
    if os.environ.get("GLINT_SSL_CERTFILE"):
        scheme = "https"
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    url = f"{scheme}://127.0.0.1:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(f"{url}: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
