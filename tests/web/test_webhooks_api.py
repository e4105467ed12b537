"""An ISP sets its webhook through the API, sees the secret once, pings it, sees deliveries."""

import pytest_twisted

from tests.web.flows import onboard


@pytest_twisted.ensureDeferred
async def test_the_webhook_is_set_shown_without_secret_pinged_and_removed(api):
    made = await onboard(api, "kages.example.net")
    base, token = made["base"], made["token"]
    code, error, _ = await api.call("POST", f"{base}/webhook/ping", token)
    assert code == 404
    code, hook, _ = await api.call("PUT", f"{base}/webhook", token, json={"url": "https://crm.example.org/hook"})
    assert code == 200 and hook["secret"].startswith("whsec_") and hook["secret"].endswith(hook["secret_hint"][3:])
    code, shown, _ = await api.call("GET", f"{base}/webhook", token)
    assert code == 200 and "secret" not in shown and shown["url"] == "https://crm.example.org/hook"
    code, chosen, _ = await api.call("PUT", f"{base}/webhook", token, json={
        "url": "https://crm.example.org/v2", "secret": "my-own-secret-of-24-chars"})
    assert chosen["secret"] == "my-own-secret-of-24-chars"
    code, queued, _ = await api.call("POST", f"{base}/webhook/ping", token)
    assert code == 202 and queued["event"] == "webhook.ping"
    code, deliveries, _ = await api.call("GET", f"{base}/webhook/deliveries", token)
    # The onboarding's customer started in WAIT, which was announced before the ping.
    assert [(d["event"], d["sent_at"]) for d in deliveries["items"]] == [("webhook.ping", None), ("signup.waiting", None)]
    assert deliveries["items"][0]["id"] == queued["id"]
    code, error, _ = await api.call("PUT", f"{base}/webhook", token, json={"url": "gopher://crm.example.org/x"})
    assert code == 422 and error["field"] == "url"
    code, error, _ = await api.call("PUT", f"{base}/webhook", token, json={"url": "https://crm.example.org/x",
                                                                           "secret": "short"})
    assert code == 422 and error["field"] == "secret"
    code, _, _ = await api.call("DELETE", f"{base}/webhook", token)
    assert code == 204
    code, _, _ = await api.call("GET", f"{base}/webhook", token)
    assert code == 404
