"""MSAL for Python against fileintel, as an MDE client would use it with only its login URL changed.

Run by the Rust test `msal_acquires_a_token_over_https_and_reads_files` with the server's details in
the environment. Exits non-zero, with the reason, on any mismatch.
"""
import os
import sys

import msal
import requests

MDE_SCOPE = "https://api.securitycenter.microsoft.com/.default"


def main() -> int:
    ca, base = os.environ["FILEINTEL_CA"], os.environ["FILEINTEL_BASE"]
    app = msal.ConfidentialClientApplication(
        os.environ["FILEINTEL_CLIENT_ID"],
        client_credential=os.environ["FILEINTEL_CLIENT_SECRET"],
        authority=f"{base}/{os.environ['FILEINTEL_TENANT']}",
        instance_discovery=False,
        verify=ca,
    )
    result = app.acquire_token_for_client(scopes=[MDE_SCOPE])
    if "access_token" not in result:
        print(f"no token: {result}", file=sys.stderr)
        return 1
    headers = {"Authorization": f"Bearer {result['access_token']}"}

    known = os.environ["FILEINTEL_KNOWN_SHA1"]
    answer = requests.get(f"{base}/api/files/{known}", headers=headers, verify=ca, timeout=30)
    if answer.status_code != 200 or answer.json().get("sha1") != known:
        print(f"known file: {answer.status_code} {answer.text}", file=sys.stderr)
        return 1

    unknown = "0" * 64
    answer = requests.get(f"{base}/api/files/{unknown}", headers=headers, verify=ca, timeout=30)
    error = answer.json().get("error", {}) if answer.headers.get("content-type", "").startswith("application/json") else {}
    if answer.status_code != 404 or error.get("code") != "ResourceNotFound" or not error.get("target"):
        print(f"unknown file: {answer.status_code} {answer.text}", file=sys.stderr)
        return 1

    # A second acquisition is served from MSAL's cache: the token is long-lived enough for it.
    again = app.acquire_token_for_client(scopes=[MDE_SCOPE])
    if again.get("token_source") != "cache":
        print(f"MSAL did not cache the token: {again.get('token_source')}", file=sys.stderr)
        return 1
    print("msal e2e ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
