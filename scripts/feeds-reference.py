#!/usr/bin/env python3
"""Feeds made by the libraries their communities use, and what they say.

    scripts/feeds-reference.py OUT_DIR [CACHE_DIR]

Writes, with OASIS's `stix2` library (PyPI):
  OUT_DIR/stix-bundle.json     a STIX 2.1 bundle of indicators, malware and relationships;
  OUT_DIR/stix-expected.json   what each indicator says of which file hash, as this script built
                               it: {"statements": [{hash, label, value, valid_until, revoked,
                               reference}], "rejected": [indicator ids that must be reported]}.

and with CIRCL's `pymisp`:
  OUT_DIR/misp-event.json      a MISP event as MISP exports it ({"Event": {...}});
  OUT_DIR/misp-expected.json   {"statements": [{reference, hashes, value, determination}],
                               "rejected": [attribute uuids that must be reported]}.

and, from public examples that others published (read in place, never copied into fileintel):
  OUT_DIR/public/stix/NAME.json   the STIX 2.1 example bundles of OASIS's stix2-validator
                                  (PyPI sdist, pinned), among them Mandiant's APT1 report;
  OUT_DIR/public/misp/NAME.json   the MISP events of pymisp's own tests (PyPI sdist, pinned),
                                  among them CIRCL OSINT events;
  beside each, NAME.expected.json in the shapes above, read with stix2's pattern parser and
  with pymisp's MISPEvent, by the rules fileintel documents (fileintel-feeds' stix and misp
  modules). The sdists are downloaded once into CACHE_DIR (default OUT_DIR/cache).

The expectations come from the objects this script created or from what the libraries read,
never from fileintel's code; for the public MISP events, threat names are the galaxy clusters
their authors exported (type and name as pymisp reads them). What is still ours, and so cannot
catch a mistake in it: which galaxy types name a threat, the to_ids rule, and the event and
bundle this script builds itself. Installs stix2 and pymisp with pip when they are missing.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile


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


# The public examples, by pinned sdist: the folder inside it whose JSON files are taken.
PUBLIC = {
    "stix": ("stix2-validator==3.3.2", "stix2validator/schemas-2.1/examples/"),
    "misp": ("pymisp==2.5.34.4", "tests/"),
}
HEX = {"MD5": 32, "SHA1": 40, "SHA256": 64}


def fetch_public(out: str, cache: str) -> dict:
    """Extracts each pinned sdist's example JSON files into OUT/public/KIND; their paths."""
    os.makedirs(cache, exist_ok=True)
    found = {}
    for kind, (requirement, folder) in PUBLIC.items():
        name, version = requirement.split("==")
        stem = f"{name}_{version}".replace("-", "_")
        archives = [path for path in glob.glob(os.path.join(cache, "*.tar.gz"))
                    if os.path.basename(path).replace("-", "_").startswith(stem)]
        if not archives:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                            "-d", cache, requirement], check=True, stdout=subprocess.DEVNULL)
            archives = [path for path in glob.glob(os.path.join(cache, "*.tar.gz"))
                        if os.path.basename(path).replace("-", "_").startswith(stem)]
        target = os.path.join(out, "public", kind)
        os.makedirs(target, exist_ok=True)
        found[kind] = []
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                inner = member.name.split("/", 1)[1] if "/" in member.name else member.name
                if not (member.isfile() and inner.startswith(folder) and inner.endswith(".json")):
                    continue
                path = os.path.join(target, inner[len(folder):].replace("/", "--"))
                with archive.extractfile(member) as source, open(path, "wb") as sink:
                    sink.write(source.read())
                found[kind].append(path)
    return found


def stix_hash(comparison) -> str | None:
    """The hash a stix2 comparison expression names, when it is file:hashes.NAME = 'hex'."""
    from stix2.patterns import EqualityComparisonExpression

    if not isinstance(comparison, EqualityComparisonExpression) or comparison.negated:
        return None
    path = comparison.lhs
    steps = [getattr(step, "property_name", None) for step in path.property_path]
    if path.object_type_name != "file" or len(steps) != 2 or steps[0] != "hashes":
        return None
    name = str(steps[1]).strip("'").upper().replace("-", "")
    value = str(comparison.rhs.value)
    if HEX.get(name) != len(value) or not re.fullmatch(r"[0-9a-fA-F]+", value):
        return None
    return value.lower()


def stix_public(path: str) -> bool:
    """Writes PATH's expectation by stix2's pattern parser; False when PATH is not a bundle."""
    from stix2 import patterns
    from stix2.pattern_visitor import create_pattern_object

    with open(path) as file:
        bundle = json.load(file)
    if not isinstance(bundle, dict) or bundle.get("type") != "bundle":
        os.remove(path)
        return False
    objects = bundle.get("objects", [])
    malware = {o["id"]: o["name"] for o in objects if o.get("type") == "malware" and "name" in o}
    indicates = {o["source_ref"]: malware[o["target_ref"]] for o in objects
                 if o.get("type") == "relationship" and o.get("relationship_type") == "indicates"
                 and o.get("target_ref") in malware}
    statements, rejected = [], []
    for o in objects:
        if o.get("type") != "indicator":
            continue
        if o.get("pattern_type", "stix") != "stix":
            rejected.append(o["id"])
            continue
        try:
            tree = create_pattern_object(o["pattern"], version="2.1")
        except Exception:
            rejected.append(o["id"])
            continue
        observations = tree.operands if isinstance(tree, patterns.OrObservationExpression) else [tree]
        if not all(type(obs) is patterns.ObservationExpression for obs in observations):
            rejected.append(o["id"])  # qualifiers, AND or FOLLOWEDBY between observations
            continue
        hashes, skipped = [], False
        for observation in observations:
            expression = observation.operand
            if isinstance(expression, patterns.AndBooleanExpression):
                skipped = True
                continue
            comparisons = expression.operands if isinstance(expression, patterns.OrBooleanExpression) else [expression]
            for comparison in comparisons:
                found = stix_hash(comparison)
                if found is None:
                    skipped = True
                else:
                    hashes.append(found)
        if skipped:
            rejected.append(o["id"])
        label = ",".join(o.get("indicator_types", []) + o.get("labels", []))
        for found in hashes:
            statements.append({"hash": found, "label": label, "value": indicates.get(o["id"], o.get("name")),
                               "valid_until": o.get("valid_until"), "revoked": o.get("revoked", False),
                               "reference": o["id"]})
    with open(path[:-5] + ".expected.json", "w") as file:
        json.dump({"statements": statements, "rejected": sorted(set(rejected))}, file, indent=1)
    return True


# The MISP galaxies whose clusters name a threat (fileintel-feeds' misp::THREAT_GALAXIES).
THREAT_GALAXIES = {"malpedia", "ransomware", "rat", "tool", "botnet", "banker", "stealer", "backdoor", "android",
                   "exploit-kit", "cryptominers", "mitre-malware", "mitre-tool", "mitre-enterprise-attack-malware",
                   "mitre-enterprise-attack-tool", "mitre-mobile-attack-malware", "mitre-mobile-attack-tool"}
MISP_HASH_TYPES = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256", "filename|md5": "MD5",
                   "filename|sha1": "SHA1", "filename|sha256": "SHA256", "malware-sample": "MD5"}


def misp_public(path: str) -> bool:
    """Writes PATH's expectation as pymisp reads the event; False when pymisp reads no event."""
    from pymisp import MISPEvent

    event = MISPEvent()
    try:
        event.load_file(path)
    except Exception:
        os.remove(path)
        return False
    with open(path) as file:
        text = file.read()

    def uuid_of(item) -> str:
        """The uuid as the file gives it; pymisp makes one up where the file has none."""
        return item.uuid if item.uuid in text else "?"

    # The clusters the event's authors exported with it (its "Galaxy" sections, the event's and
    # its attributes'), as pymisp reads them: for a tag of one of them, the galaxy's type and
    # the cluster's name are the authors', not parsed out of the tag here. Only for a tag with
    # no exported cluster is the tag itself parsed. Which galaxy types name a threat
    # (THREAT_GALAXIES) and the to_ids rule below are still fileintel's documented rules.
    clusters = {}
    holders = [event] + list(event.attributes) + [a for o in event.objects for a in o.attributes]
    for holder in holders:
        for galaxy in getattr(holder, "galaxies", None) or []:
            for cluster in galaxy.clusters:
                if getattr(cluster, "tag_name", None) and getattr(cluster, "value", None):
                    clusters[cluster.tag_name] = (galaxy.type, cluster.value)

    def threat(tags) -> str | None:
        for tag in tags:
            if tag.name in clusters:
                kind, name = clusters[tag.name]
            else:
                match = re.fullmatch(r'misp-galaxy:([^=]+)="?(.*?)"?', tag.name)
                if not match:
                    continue
                kind, name = match.group(1), match.group(2)
            if kind in THREAT_GALAXIES:
                return name
        return None

    def hash_of(attribute) -> str | None | bool:
        """The attribute's hash; None when it is no hash attribute, False when its value is wrong."""
        name = MISP_HASH_TYPES.get(attribute.type)
        if name is None:
            return None
        value = str(attribute.value).rsplit("|", 1)[-1]
        if len(value) != HEX[name] or not re.fullmatch(r"[0-9a-fA-F]+", value):
            return False
        return value.lower()

    event_threat = threat(event.tags) or (event.info.strip() or None if event.info else None)
    statements, rejected, said = [], [], {}
    for attribute in event.attributes:
        if getattr(attribute, "deleted", False):
            continue
        found = hash_of(attribute)
        if found is False:
            rejected.append(uuid_of(attribute))
        if not found or not (attribute.to_ids or attribute.tags):
            continue
        statements.append({"reference": uuid_of(attribute), "hashes": [found],
                           "value": threat(attribute.tags) or event_threat, "to_ids": bool(attribute.to_ids)})
    for obj in event.objects:
        if obj.name != "file" or getattr(obj, "deleted", False):
            continue
        used = [a for a in obj.attributes if not getattr(a, "deleted", False) and hash_of(a) is not None]
        if any(hash_of(a) is False for a in used):
            rejected.append(uuid_of(obj))
            continue
        if not used:
            continue
        tags = list(obj.tags) if hasattr(obj, "tags") else []
        tags += [tag for a in used for tag in a.tags]
        to_ids = any(a.to_ids for a in used)
        if not (to_ids or tags):
            continue
        statements.append({"reference": uuid_of(obj), "hashes": sorted({hash_of(a) for a in used}),
                           "value": threat(tags) or event_threat, "to_ids": to_ids})
    with open(path[:-5] + ".expected.json", "w") as file:
        json.dump({"statements": statements, "rejected": sorted(set(rejected))}, file, indent=1)
    return True


def public(out: str, cache: str) -> None:
    found = fetch_public(out, cache)
    kept = {"stix": [p for p in found["stix"] if stix_public(p)], "misp": [p for p in found["misp"] if misp_public(p)]}
    with open(os.path.join(out, "public", "index.json"), "w") as file:
        json.dump({kind: sorted(os.path.basename(p) for p in paths) for kind, paths in kept.items()}, file, indent=1)


def main() -> None:
    out = sys.argv[1]
    cache = sys.argv[2] if len(sys.argv) > 2 else os.path.join(out, "cache")
    os.makedirs(out, exist_ok=True)
    ensure("stix2", "stix2")
    ensure("pymisp", "pymisp")
    stix(out)
    misp(out)
    public(out, cache)


if __name__ == "__main__":
    main()
