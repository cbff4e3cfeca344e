"""The zero-code shim: slack-sdk clients in a child process default to the simulator's URL, explicit URLs win."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from slackops.verify import shim_dir

PROBE = """
import json
from slack_sdk import WebClient
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.legacy_client import LegacyWebClient
print(json.dumps({
    "web": WebClient(token="x").base_url,
    "async": AsyncWebClient().base_url,
    "legacy": LegacyWebClient().base_url,
    "positional": WebClient("x", "https://slack.com/api/").base_url,
    "explicit": WebClient(base_url="https://proxy.example/api/").base_url,
    "explicit_positional": WebClient("x", "https://proxy.example/api/").base_url,
}))
"""


def run_probe(env_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SLACKOPS_SIM_API_URL"}
    env["PYTHONPATH"] = os.pathsep.join([str(shim_dir()), env.get("PYTHONPATH", "")])
    if env_url:
        env["SLACKOPS_SIM_API_URL"] = env_url
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_shim_points_default_clients_at_the_simulator_and_keeps_explicit_urls():
    urls = run_probe("http://127.0.0.1:9/api/")
    assert urls == {
        "web": "http://127.0.0.1:9/api/",
        "async": "http://127.0.0.1:9/api/",
        "legacy": "http://127.0.0.1:9/api/",
        "positional": "http://127.0.0.1:9/api/",
        "explicit": "https://proxy.example/api/",
        "explicit_positional": "https://proxy.example/api/",
    }


def test_shim_does_nothing_without_the_variable():
    urls = run_probe(None)
    assert urls["web"] == urls["async"] == "https://slack.com/api/"


def test_shim_chains_to_the_sitecustomize_it_shadows(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import builtins\nbuiltins.OTHER_SITECUSTOMIZE_RAN = True\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(shim_dir()), str(tmp_path)])
    env["SLACKOPS_SIM_API_URL"] = "http://127.0.0.1:9/api/"
    code = "import builtins; print(getattr(builtins, 'OTHER_SITECUSTOMIZE_RAN', False))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True", out.stderr
