"""Schemathesis hooks for `make test` (infra/test.sh loads this file through SCHEMATHESIS_HOOKS).

Each hook stands for a rule of the contract that OpenAPI cannot state about one value, so that a
request the generator calls valid is one the contract calls valid:

- `Idempotency-Key`: the server replays the first response for a key (or answers 400
  `idempotency_key_reused` for another body), and generated keys repeat across cases. A valid
  key is replaced by a fresh one, so each case is a first request; an invalid one (negative
  testing) is left for the server to refuse.
- `cursor`: only a cursor the server issued is valid (400 `invalid_cursor`); a made-up one is
  dropped, so the page is the first.
- `period_start` / `period_end` of the usage report: each is a date, but together they must be
  in order and at most 366 days apart (each defaults to this month's first or last day). A pair
  that breaks that is dropped, so the report is of this month.
- `soft_cap_cents` / `hard_cap_cents`: soft ≤ hard. A pair out of order in one body is swapped;
  a lone cap can still be out of order with the other one set earlier (state, not the
  request's form), and that 400 alone is not counted as a rejected valid request.
- `event_id` of a usage event: the event's own idempotency key (the same id with another body
  is 400 `idempotency_key_reused`), so a valid one is made unique like `Idempotency-Key`.
- `occurred_at` of a usage event: at most 5 minutes ahead of the server's clock. A later one is
  moved to now.
- `PAYMENT-SIGNATURE` / `X-PAYMENT` of the x402 checkout: only a payment signed by a wallet is
  valid (anything else is 400 `invalid_request`), and none is generated: a valid-looking one is
  dropped, so the answer is the 402 that says what to pay.
- `url` of a webhook endpoint: the local stage delivers to any host the URL names, and this
  run's traffic must stay on this machine. A URL of the schema's form is replaced by a closed
  port on loopback (its deliveries fail and are retried there); any other is left for the
  server to refuse.
"""

import calendar
import datetime
import re
import uuid

import schemathesis

MAX_PERIOD_DAYS = 366


@schemathesis.hook
def before_call(ctx, case, kwargs):
    # `before_call` sees every phase's requests (the `map_*` hooks see only what Hypothesis
    # draws, not the coverage phase's cases).
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and 1 <= len(value) <= 255:
            headers[name] = uuid.uuid4().hex
        if name.lower() in ("payment-signature", "x-payment") and isinstance(value, str):
            del headers[name]
    if isinstance(case.body, dict):
        if case.operation.path.endswith("/usage-events") and _valid_id(case.body.get("event_id")):
            case.body["event_id"] = uuid.uuid4().hex
        if case.operation.path.endswith("/webhook-endpoints") and _webhook_url(case.body.get("url")):
            case.body["url"] = "http://127.0.0.1:9/hook"
        _order_caps(case.body)
        _not_in_future(case.body)
    query = case.query
    if not isinstance(query, dict):
        return
    query.pop("cursor", None)
    if "period_start" in query or "period_end" in query:
        if not _valid_period(query.get("period_start"), query.get("period_end")):
            query.pop("period_start", None)
            query.pop("period_end", None)


def _valid_id(value):
    # As the schema: 1 to 255 characters, none a control character.
    return isinstance(value, str) and 1 <= len(value) <= 255 and not re.search("[\x00-\x1f\x7f-\x9f]", value)


# `URL_PATTERN` of shared/src/domain/webhooks.rs, which the server checks exactly (it also takes
# a bracketed IPv6 host). Only a URL the server takes is replaced, so a negative case stays one.
WEBHOOK_URL = re.compile(
    r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])"
    r"(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    r"(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?"
    r"([?][A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?"
)


def _webhook_url(value):
    return isinstance(value, str) and len(value) <= 2048 and WEBHOOK_URL.fullmatch(value) is not None


CAPS_OUT_OF_ORDER = "`soft_cap_cents` must not be greater than `hard_cap_cents`"


# `dev/complete-local` answers 404 for a checkout session id in its body that no checkout made:
# the workspace in its path exists, so schemathesis' "created resource not found" (ST302) reads
# that 404 as the workspace's. The session id is generated; it can't be one a checkout made.
UNKNOWN_CHECKOUT = "no such checkout session"


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    if getattr(failure, "code", None) == "ST302" and response.status_code == 404:
        try:
            return response.json()["error"].get("message") != UNKNOWN_CHECKOUT
        except Exception:
            return True
    if getattr(failure, "code", None) != "ST202" or response.status_code != 400:
        return True
    try:
        error = response.json()["error"]
    except Exception:
        return True
    return not (error.get("code") == "invalid_request" and error.get("message") == CAPS_OUT_OF_ORDER)


def _valid_period(start, end):
    today = datetime.datetime.now(datetime.timezone.utc).date()
    first = today.replace(day=1)
    last = today.replace(day=calendar.monthrange(today.year, today.month)[1])
    try:
        start = _date(start, first)
        end = _date(end, last)
    except ValueError:
        # Not a date: negative testing, for the server to refuse.
        return True
    return start <= end and (end - start).days + 1 <= MAX_PERIOD_DAYS


def _date(text, default):
    if text is None:
        return default
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise ValueError(text)
    return datetime.date.fromisoformat(text)


def _order_caps(body):
    soft, hard = body.get("soft_cap_cents"), body.get("hard_cap_cents")
    if _is_number(soft) and _is_number(hard) and soft > hard:
        body["soft_cap_cents"], body["hard_cap_cents"] = hard, soft


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _not_in_future(body):
    text = body.get("occurred_at")
    if not isinstance(text, str):
        return
    try:
        at = datetime.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return  # not a time: negative testing, for the server to refuse
    if at.tzinfo is None:
        return
    now = datetime.datetime.now(datetime.timezone.utc)
    if at > now + datetime.timedelta(minutes=5):
        body["occurred_at"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
