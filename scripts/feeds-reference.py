#!/usr/bin/env python3
"""Feeds made by the libraries their communities use, and what they say.

    scripts/feeds-reference.py OUT_DIR

Writes, with OASIS's `stix2` library (PyPI):
  OUT_DIR/stix-bundle.json     a STIX 2.1 bundle of indicators, malware and relationships;
  OUT_DIR/stix-expected.json   what each indicator says of which file hash, as this script built
                               it: {"statements": [{hash, label, value, valid_until, revoked,
                               reference}], "rejected": [indicator ids that must be reported]}.

and with CIRCL's `pymisp`:
  OUT_DIR/misp-event.json      a MISP event as MISP exports it ({"Event": {...}});
  OUT_DIR/misp-expected.json   {"statements": [{reference, hashes, value, determination}],
                               "rejected": [attribute uuids that must be reported]}.

The expectations come from the objects this script created, never from fileintel.
Installs stix2 and pymisp with pip when they are missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys


def ensure(module: str, package: str) -> None:
    try:
        __import__(module)
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", package], check=True,
                       stdout=subprocess.DEVNULL)


def digests(seed: str) -> dict:
    data = seed.encode()
    return {"MD5": hashlib.md5(data).hexdigest(), "SHA-1": hashlib.sha1(data).hexdigest(),
            "SHA-256": hashlib.sha256(data).hexdigest()}


def stix(out: str) -> None:
    import stix2

    objects, statements, rejected = [], [], []
    emotet = stix2.Malware(name="Emotet", is_family=True, malware_types=["trojan"])
    objects.append(emotet)

    def indicator(pattern: str, **kwargs):
        kwargs.setdefault("valid_from", "2024-01-01T00:00:00Z")
        made = stix2.Indicator(pattern=pattern, pattern_type="stix", **kwargs)
        objects.append(made)
        return made

    # One SHA-256, malicious, indicating Emotet through a relationship.
    a = digests("a")
    one = indicator(f"[file:hashes.'SHA-256' = '{a['SHA-256']}']", indicator_types=["malicious-activity"],
                    name="dropper")
    objects.append(stix2.Relationship(one, "indicates", emotet))
    statements.append({"hash": a["SHA-256"], "label": "malicious-activity", "value": "Emotet",
                       "valid_until": None, "revoked": False, "reference": one.id})

    # MD5 OR SHA-1 of another file, benign, named by itself, valid until a date.
    b = digests("b")
    two = indicator(f"[file:hashes.MD5 = '{b['MD5']}' OR file:hashes.'SHA-1' = '{b['SHA-1']}']",
                    indicator_types=["benign"], name="known good installer",
                    valid_until="2030-01-01T00:00:00Z")
    for hash_ in (b["MD5"], b["SHA-1"]):
        statements.append({"hash": hash_, "label": "benign", "value": "known good installer",
                           "valid_until": "2030-01-01T00:00:00Z", "revoked": False, "reference": two.id})

    # Across observations: two files by OR, and a URL that is reported, not taken.
    c, d = digests("c"), digests("d")
    three = indicator(f"[file:hashes.'SHA-256' = '{c['SHA-256']}'] OR [file:hashes.'SHA-256' = '{d['SHA-256']}']"
                      " OR [url:value = 'http://example.com/payload']",
                      indicator_types=["anomalous-activity"], name="campaign files")
    for hash_ in (c["SHA-256"], d["SHA-256"]):
        statements.append({"hash": hash_, "label": "anomalous-activity", "value": "campaign files",
                           "valid_until": None, "revoked": False, "reference": three.id})
    rejected.append(three.id)

    # A hash ANDed with a file name: taking the hash alone would claim more; reported.
    e = digests("e")
    four = indicator(f"[file:hashes.MD5 = '{e['MD5']}' AND file:name = 'invoice.exe']",
                     indicator_types=["malicious-activity"], name="named file")
    rejected.append(four.id)

    # Not about files at all: reported.
    five = indicator("[ipv4-addr:value = '198.51.100.7']", indicator_types=["malicious-activity"], name="c2")
    rejected.append(five.id)

    # Revoked: kept as revoked.
    f = digests("f")
    six = indicator(f"[file:hashes.'SHA-256' = '{f['SHA-256']}']", indicator_types=["malicious-activity"],
                    name="withdrawn")
    six = six.new_version(revoked=True)
    objects[-1] = six
    statements.append({"hash": f["SHA-256"], "label": "malicious-activity", "value": "withdrawn",
                       "valid_until": None, "revoked": True, "reference": six.id})

    bundle = stix2.Bundle(*objects, allow_custom=False)
    with open(os.path.join(out, "stix-bundle.json"), "w") as file:
        file.write(bundle.serialize(pretty=True))
    with open(os.path.join(out, "stix-expected.json"), "w") as file:
        json.dump({"statements": statements, "rejected": rejected}, file, indent=1)


def misp(out: str) -> None:
    from pymisp import MISPEvent, MISPObject

    event = MISPEvent()
    event.info = "Emotet wave"
    event.add_tag('misp-galaxy:malpedia="Emotet"')
    statements, rejected = [], []

    # A detection (to_ids) with its own tag: Malware, named by the event's galaxy cluster.
    a = digests("misp-a")
    one = event.add_attribute("sha256", a["SHA-256"], to_ids=True)
    one.add_tag('ms-caro-malware:malware-type="Trojan"')
    statements.append({"reference": one.uuid, "hashes": [a["SHA-256"]], "value": "Emotet",
                       "determination": "Malware"})
    # Context only (not to_ids, no tag of its own): not a verdict.
    b = digests("misp-b")
    event.add_attribute("md5", b["MD5"], to_ids=False)
    # A file name with its SHA-1, for detection.
    c = digests("misp-c")
    three = event.add_attribute("filename|sha1", f"invoice.exe|{c['SHA-1']}", to_ids=True)
    statements.append({"reference": three.uuid, "hashes": [c["SHA-1"]], "value": "Emotet",
                       "determination": "Malware"})
    # Deleted: skipped.
    d = digests("misp-d")
    gone = event.add_attribute("sha1", d["SHA-1"], to_ids=True)
    gone.delete()
    # An allow-listed file: its tag says benign, though not for detection.
    e = digests("misp-e")
    five = event.add_attribute("sha256", e["SHA-256"], to_ids=False)
    five.add_tag("benign")
    statements.append({"reference": five.uuid, "hashes": [e["SHA-256"]], "value": "Emotet",
                       "determination": "Clean"})
    # A file object: one file by two hashes.
    f = digests("misp-f")
    obj = MISPObject("file")
    obj.add_attribute("sha256", value=f["SHA-256"], to_ids=True)
    obj.add_attribute("md5", value=f["MD5"], to_ids=True)
    obj.add_attribute("filename", value="loader.dll")
    event.add_object(obj)
    statements.append({"reference": obj.uuid, "hashes": sorted([f["SHA-256"], f["MD5"]]), "value": "Emotet",
                       "determination": "Malware"})
    # A hash attribute whose value is not a hash of its kind: reported.
    wrong = event.add_attribute("sha256", b["MD5"], to_ids=True)
    rejected.append(wrong.uuid)

    with open(os.path.join(out, "misp-event.json"), "w") as file:
        json.dump({"Event": json.loads(event.to_json())}, file, indent=1)
    with open(os.path.join(out, "misp-expected.json"), "w") as file:
        json.dump({"statements": statements, "rejected": rejected}, file, indent=1)


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    ensure("stix2", "stix2")
    ensure("pymisp", "pymisp")
    stix(out)
    misp(out)


if __name__ == "__main__":
    main()
