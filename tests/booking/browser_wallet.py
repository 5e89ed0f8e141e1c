"""A test wallet for the booking pages: an EIP-1193 provider (``window.ethereum``) injected into every page
of a Playwright context, holding one of anvil's unlocked dev accounts.

Like a browser extension, it does its JSON-RPC outside the page (the page's CSP allows it to fetch
from its own service only): the page's requests reach Python through ``expose_function`` and go to
anvil, which signs ``personal_sign`` and ``eth_sendTransaction`` for its dev accounts. The page never
holds a key. Requests for another account than the wallet's are refused, as a wallet would.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

PROVIDER_JS = """
(() => {
  const account = %s;
  const forward = async (method, params) => {
    const answer = await window.__parkgateTestWallet(method, params);
    if (answer.error) {
      const error = new Error(answer.error.message);
      error.code = answer.error.code;
      error.data = answer.error.data;
      throw error;
    }
    return answer.result;
  };
  window.ethereum = {
    isParkgateTestWallet: true,
    request: async ({ method, params }) => {
      if (method === "eth_requestAccounts" || method === "eth_accounts") return [account];
      return forward(method, params || []);
    },
    on() {},
    removeListener() {},
  };
})();
"""
SIGNING = {"eth_sendTransaction": lambda p: p[0].get("from"), "personal_sign": lambda p: p[1]}


def rpc_error(code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}}


def install_wallet(context: Any, rpc_url: str, account: str) -> list[str]:
    """Give every page of ``context`` a wallet holding ``account``; returns the list of the methods the
    pages called (in order), for the tests to check what went through the wallet."""
    calls: list[str] = []

    def forward(method: str, params: list[Any]) -> dict[str, Any]:
        calls.append(method)
        if method in SIGNING:
            signer = SIGNING[method](params) if params else None
            if not isinstance(signer, str) or signer.lower() != account.lower():
                return rpc_error(4100, f"this wallet holds {account} only, not {signer}")
        elif not method.startswith("eth_"):
            return rpc_error(4200, f"this wallet does not support {method}")
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        request = urllib.request.Request(rpc_url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    context.expose_function("__parkgateTestWallet", forward)
    context.add_init_script(PROVIDER_JS % json.dumps(account))
    return calls
