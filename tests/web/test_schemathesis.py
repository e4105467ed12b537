"""
Schemathesis (from PyPI) against /api/openapi.json and the live API on loopback: generated
requests, valid and not, for every operation. No answer may be a 5xx, and every answer must
match the status codes, content type and response schema the document promises; invalid
bodies must be refused.
"""

import os
import sys

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue

from tests.web.conftest import PLATFORM_TOKEN
from tests.web.flows import onboard

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "negative_data_rejection")


@pytest_twisted.ensureDeferred
async def test_schemathesis_finds_nothing_wrong(api, tmp_path):
    made = await onboard(api, "kages.example.net")
    code, deck, _ = await api.call("POST", f"{made['base']}/rate-decks", made["token"], json={
        "name": "Carrier card", "kind": "carrier", "carrier_id": made["carrier"]["id"]})
    code, draft, _ = await api.call("POST", f"{made['base']}/rate-decks/{deck['id']}/drafts", made["token"],
                                    json={"csv": "prefix,description,cost,increment\n1,North America,0.009,6/6\n"})
    assert code == 201, draft
    argv = ["-m", "schemathesis.cli", "run", f"{api.base}/api/openapi.json", "--checks", ",".join(CHECKS),
            "--header", f"Authorization: Bearer {PLATFORM_TOKEN}", "--max-examples", "6", "--seed", "5",
            "--phases", "examples,coverage,fuzzing", "--workers", "1", "--generation-database", "none",
            "--request-timeout", "20", "--no-color", "--suppress-health-check", "all"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "HOME": str(tmp_path)}
    out, err, code = await getProcessOutputAndValue(sys.executable, argv, env=env, path=str(tmp_path),
                                                    reactor=reactor)
    report = (out + err).decode("utf-8", "replace")
    assert code == 0, report
