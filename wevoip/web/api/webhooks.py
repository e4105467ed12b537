"""An ISP's webhook: where its events go, the secret that signs them, and how delivery went."""

from __future__ import annotations

from wevoip.store import webhooks
from wevoip.web.api.routes import ID, STAMP, Call, api_route, nullable, obj, record, text

WEBHOOK_SET = obj({"url": text(2000, minLength=10), "secret": text(200, minLength=16)}, ("url",))
WEBHOOK = record({"isp_id": ID, "url": {"type": "string"}, "secret_hint": {"type": "string"},
                  "created_at": STAMP, "updated_at": STAMP})
WEBHOOK_SECRET = {**WEBHOOK, "properties": {**WEBHOOK["properties"], "secret": {"type": "string"}},
                  "required": [*WEBHOOK["required"], "secret"]}
DELIVERY = record({"id": ID, "event": {"type": "string"}, "created_at": STAMP, "attempts": {"type": "integer"},
                   "sent_at": nullable(STAMP), "next_attempt_at": STAMP, "last_error": {"type": "string"}})
QUEUED = record({"id": ID, "event": {"type": "string"}})


def _shown(row, *, with_secret: bool = False) -> dict:
    shown = {"isp_id": row["isp_id"], "url": row["url"], "secret_hint": "..." + row["secret"][-4:],
             "created_at": row["created_at"], "updated_at": row["updated_at"]}
    return {**shown, "secret": row["secret"]} if with_secret else shown


@api_route("GET", "/isps/{isp_id}/webhook", scope="admin", tag="webhooks", returns=WEBHOOK,
           summary="Show the ISP's webhook URL (the secret only by its last characters)")
async def get_webhook(call: Call):
    return _shown(await call.tx(webhooks.get_webhook, call.params["isp_id"]))


@api_route("PUT", "/isps/{isp_id}/webhook", scope="admin", tag="webhooks", body=WEBHOOK_SET,
           returns=WEBHOOK_SECRET,
           summary="Set the webhook URL and signing secret (made for you unless given); the answer shows the secret")
async def set_webhook(call: Call):
    row = await call.tx(webhooks.set_webhook, call.params["isp_id"], call.body["url"], call.body.get("secret"))
    return _shown(row, with_secret=True)


@api_route("DELETE", "/isps/{isp_id}/webhook", scope="admin", tag="webhooks", status=204,
           summary="Remove the webhook: events are no longer sent")
async def delete_webhook(call: Call):
    await call.tx(webhooks.delete_webhook, call.params["isp_id"])


@api_route("POST", "/isps/{isp_id}/webhook/ping", scope="admin", tag="webhooks", returns=QUEUED, status=202,
           summary="Queue a signed test event ('webhook.ping') to the ISP's webhook")
async def ping_webhook(call: Call):
    row = await call.tx(webhooks.ping, call.params["isp_id"])
    return {"id": row["id"], "event": webhooks.PING}


@api_route("GET", "/isps/{isp_id}/webhook/deliveries", scope="admin", tag="webhooks", returns=DELIVERY,
           listing=True, summary="The ISP's webhook events, newest first, with attempts and the last error")
async def list_deliveries(call: Call):
    limit, offset = call.page()
    return await call.tx(webhooks.list_deliveries, call.params["isp_id"], limit=limit, offset=offset)
