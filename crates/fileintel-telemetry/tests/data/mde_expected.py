#!/usr/bin/env python3
"""Writes mde_expected.json: what fileintel's MDE importer should make of each fixture here.

An independent reference, using only Python's csv and json modules. Run it from anywhere:

    python3 mde_expected.py            # rewrites mde_expected.json beside this script
    python3 mde_expected.py --check    # exits 1 if mde_expected.json is out of date

Rules:
  * Each row (CSV row, or element of the streaming file's "records") yields up to two
    observations, target first:
      - "target": SHA1, SHA256, MD5, FileName, FolderPath, FileSize;
      - "initiatingProcess": InitiatingProcessSHA1, InitiatingProcessSHA256,
        InitiatingProcessMD5, InitiatingProcessFileName, InitiatingProcessFolderPath,
        InitiatingProcessFileSize (when the column exists).
    A side counts when it has at least one valid hash (SHA1 = 40, SHA256 = 64, MD5 = 32 hex
    digits, any case; lower-cased on output). Empty or null hash values are absent.
  * Any malformed (non-empty, not valid) hash value on a side makes that side a rejection,
    whatever its other hashes: {"row", "role", "rejected": "malformed <ALG>"}.
  * row: CSV -> the 1-based line number on which the record starts (the header is line 1);
    streaming JSON -> the 0-based index in "records".
  * deviceId = DeviceId, deviceName = DeviceName (null when empty).
  * timestamp = Timestamp (streaming: properties.Timestamp, falling back to the record's
    "time"), as RFC 3339 "YYYY-MM-DDTHH:MM:SS[.fffffff]Z" with the fraction's trailing zeros
    trimmed (at most 7 digits). A row whose timestamp cannot be read is rejected on both
    sides ("unreadable timestamp") - no fixture has one.
  * fileName = FileName (null when empty). folderPath = FolderPath with a trailing
    "\\" + FileName removed when it ends with it, compared CASE-INSENSITIVELY (Windows paths;
    one fixture row has "Explorer.EXE" beside "...\\explorer.exe"); otherwise FolderPath as
    given (MDE sometimes gives the folder alone). Null when empty.
  * size = FileSize / InitiatingProcessFileSize as an integer, null when empty or absent.
"""
import csv
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CSV_FIXTURES = [
    "mde_device_process_events.csv",
    "mde_device_file_events.csv",
    "mde_device_image_load_events.csv",
]
JSON_FIXTURES = ["mde_streaming.json"]
OUTPUT = "mde_expected.json"

HASH_LEN = {"SHA1": 40, "SHA256": 64, "MD5": 32}
HEX = re.compile(r"^[0-9A-Fa-f]+$")
TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:Z|[+-]00:?00)?$")
SIDES = (
    ("target", "", "FileSize"),
    ("initiatingProcess", "InitiatingProcess", "InitiatingProcessFileSize"),
)


def text(value):
    """A cell as a string, or None when empty/null."""
    if value is None:
        return None
    value = str(value)
    return value if value != "" else None


def normalise_timestamp(value):
    value = text(value)
    if value is None:
        return None
    m = TIMESTAMP.match(value.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    out = f"{y}-{mo}-{d}T{h}:{mi}:{s}"
    frac = (frac or "")[:7].rstrip("0")
    return out + ("." + frac if frac else "") + "Z"


def folder_of(folder_path, file_name):
    if folder_path is None:
        return None
    if file_name:
        tail = "\\" + file_name
        if folder_path.lower().endswith(tail.lower()):
            return folder_path[: -len(tail)]
    return folder_path


def size_of(value):
    value = text(value)
    if value is None:
        return None
    return int(value)


def observations(row_number, fields, fallback_time=None):
    """The observations/rejections of one row, given its columns as a dict."""
    out = []
    timestamp = normalise_timestamp(fields.get("Timestamp"))
    if timestamp is None and fallback_time is not None:
        timestamp = normalise_timestamp(fallback_time)
    for role, prefix, size_column in SIDES:
        hashes, malformed = {}, []
        for alg, length in HASH_LEN.items():
            value = text(fields.get(prefix + alg))
            if value is None:
                continue
            if len(value) == length and HEX.match(value):
                hashes[alg] = value.lower()
            else:
                malformed.append(alg)
        if malformed:
            out.append({"row": row_number, "role": role,
                        "rejected": "malformed " + ", ".join(malformed)})
            continue
        if not hashes:
            continue
        if timestamp is None:
            out.append({"row": row_number, "role": role, "rejected": "unreadable timestamp"})
            continue
        file_name = text(fields.get(prefix + "FileName"))
        out.append({
            "row": row_number,
            "role": role,
            "sha1": hashes.get("SHA1"),
            "sha256": hashes.get("SHA256"),
            "md5": hashes.get("MD5"),
            "deviceId": text(fields.get("DeviceId")),
            "deviceName": text(fields.get("DeviceName")),
            "timestamp": timestamp,
            "fileName": file_name,
            "folderPath": folder_of(text(fields.get(prefix + "FolderPath")), file_name),
            "size": size_of(fields.get(size_column)),
        })
    return out


def from_csv(path):
    out = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        next_start = reader.line_num + 1  # the line the next record starts on
        for cells in reader:
            start, next_start = next_start, reader.line_num + 1
            if not cells:
                continue
            if len(cells) != len(header):
                raise ValueError(f"{path}: line {start}: {len(cells)} cells, header has {len(header)}")
            out.extend(observations(start, dict(zip(header, cells))))
    return out


def from_streaming(path):
    with open(path, encoding="utf-8") as fh:
        document = json.load(fh)
    out = []
    for index, record in enumerate(document["records"]):
        out.extend(observations(index, record.get("properties") or {}, record.get("time")))
    return out


def build():
    expected = {}
    for name in CSV_FIXTURES:
        expected[name] = from_csv(os.path.join(HERE, name))
    for name in JSON_FIXTURES:
        expected[name] = from_streaming(os.path.join(HERE, name))
    return json.dumps(expected, indent=2, ensure_ascii=False) + "\n"


def main(argv):
    rendered = build()
    target = os.path.join(HERE, OUTPUT)
    if "--check" in argv:
        try:
            with open(target, encoding="utf-8") as fh:
                current = fh.read()
        except FileNotFoundError:
            current = None
        if current != rendered:
            print(f"{OUTPUT} is out of date; run {os.path.basename(__file__)}", file=sys.stderr)
            return 1
        return 0
    with open(target, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
