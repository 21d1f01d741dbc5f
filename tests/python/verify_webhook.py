"""Verifies one webhook delivery with the Standard Webhooks reference library (the Python
`standardwebhooks` package), independently of the server's own signing code.

Reads {"secret", "headers": {name: value}, "body": <the raw body as text>} on stdin; prints
"verified" and exits 0, or prints the library's reason and exits 1.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> int:
    delivery = json.load(sys.stdin)
    try:
        Webhook(delivery["secret"]).verify(delivery["body"], delivery["headers"])
    except WebhookVerificationError as error:
        print(f"refused: {error}")
        return 1
    print("verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
