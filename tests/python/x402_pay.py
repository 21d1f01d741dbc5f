"""Pays POST .../billing/checkout/x402 with the official x402 Python client (x402[evm] and an
eth-account key), unchanged but for its per-payment cap, which an agent buying $5 of credits
raises from the $1 default. Prints one JSON line for the Rust test (tests/api/x402.rs).

    python x402_pay.py buy  <url> <api key> <private key> <amount_cents>
        the client's whole flow: POST, read the 402's PAYMENT-REQUIRED, sign, POST again;
        prints the final status, body and decoded PAYMENT-RESPONSE.
    python x402_pay.py sign <url> <api key> <private key> <amount_cents>
        only the signature: prints the payment headers the client would send (for replays,
        concurrent uses and tampering, which the test sends itself).
"""

import asyncio
import base64
import json
import sys

import httpx
from eth_account import Account
from x402 import x402Client
from x402.http.clients.httpx import x402HttpxClient
from x402.http.x402_http_client import x402HTTPClient
from x402.mechanisms.evm.exact.register import register_exact_evm_client


def payment_client(private_key):
    client = x402Client()
    register_exact_evm_client(client, Account.from_key(private_key))
    # The client refuses to pay more than $1 at once unless told otherwise.
    client.set_spend_controls({"max_amount_per_payment": "$10000"})
    return client


async def buy(url, api_key, private_key, cents):
    headers = {"Authorization": f"Bearer {api_key}"}
    async with x402HttpxClient(payment_client(private_key), headers=headers, timeout=30) as http:
        response = await http.post(url, json={"amount_cents": cents})
    settled = response.headers.get("payment-response")
    return {
        "status": response.status_code,
        "body": response.json() if response.content else None,
        "payment_response": json.loads(base64.b64decode(settled)) if settled else None,
    }


async def sign(url, api_key, private_key, cents):
    client = payment_client(private_key)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as http:
        first = await http.post(url, json={"amount_cents": cents})
    http_client = x402HTTPClient(client)
    required = http_client.get_payment_required_response(first.headers.get, first.json())
    payload = await client.create_payment_payload(required)
    return {
        "status": first.status_code,
        "payment_required": json.loads(base64.b64decode(first.headers["payment-required"])),
        "headers": http_client.encode_payment_signature_header(payload),
    }


if __name__ == "__main__":
    mode, url, api_key, private_key, cents = sys.argv[1:6]
    run = {"buy": buy, "sign": sign}[mode]
    print(json.dumps(asyncio.run(run(url, api_key, private_key, int(cents)))))
