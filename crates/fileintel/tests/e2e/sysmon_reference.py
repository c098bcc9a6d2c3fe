#!/usr/bin/env python3
"""Independent reference for fileintel's Sysmon importer, built on python-evtx only.

python-evtx (PyPI "python-evtx", module ``Evtx``) is a pure-Python parser with no code in
common with the Rust ``evtx`` crate that fileintel uses, so what this prints is a second
opinion, not an echo. (The PyPI package ``evtx`` wraps the Rust crate and is deliberately
NOT used.)

Usage:
    sysmon_reference.py FILE.evtx...            one JSON line per observation / rejection
    sysmon_reference.py --count FILE.evtx...    {"file", "records", "observations"} per file
                                                (records = records python-evtx rendered)
    sysmon_reference.py --flat FILE.evtx...     every Sysmon event as flat NXLog/Mordor JSON
    sysmon_reference.py --flat-la FILE.evtx...  every Sysmon event as flat OTRF-2022 JSON
    sysmon_reference.py --ecs FILE.evtx...      every Sysmon event as Winlogbeat 8.x JSON
    sysmon_reference.py --ecs7 FILE.evtx...     the same, with Winlogbeat 7.x integer codes

Observation rules (the brief fileintel implements):
  * Only events whose System/Provider/@Name is "Microsoft-Windows-Sysmon" and whose EventData
    has a non-empty ``Hashes`` Data element count. Each yields exactly one observation, or a
    rejection when ``Hashes`` holds none of SHA1/MD5/SHA256.
  * ``Hashes`` is comma-separated ``ALG=HEX`` pairs, algorithm names case-insensitive,
    IMPHASH (and anything else) ignored; hashes are lower-cased. An empty value ("SHA1=")
    counts as absent.
  * Path: EventID 1 -> Image; 6, 7 -> ImageLoaded; 15, 23, 26, 29 -> TargetFilename; any other
    -> first present, non-empty of TargetFilename, ImageLoaded, Image. "-" and values starting
    with "<" are absent. fileName = after the last "\\" or "/", folderPath = before it; no
    separator -> fileName = path, folderPath null; no path -> both null.
  * recordId = System/EventRecordID. This is NOT the record header's number (what the Rust
    evtx crate calls ``event_record_id``): in all 58 EVTX-ATTACK-SAMPLES files the headers
    count 1..n (the files were re-saved) while EventRecordID keeps the original values.
  * deviceId = System/Computer. timestamp = EventData UtcTime ("YYYY-MM-DD HH:MM:SS[.f]", UTC)
    as RFC 3339 with "Z" and the fraction's trailing zeros trimmed; if UtcTime is absent or
    unparsable, System/TimeCreated/@SystemTime (100 ns precision, see _filetime_string),
    rendered the same way. (The record header's own timestamp is a different value: it
    differs from TimeCreated in 690 of the 767 test records.)
  * signed (Signed "true"/"false" -> bool), signature, signatureStatus, company, product:
    null when absent, empty, "-" or "?" (Sysmon's placeholder for missing version information).

Field names of the --flat / --flat-la / --ecs shapes, and the sources they were checked against
(public copies read through the project's search tool; none fetched live):
  * --flat (NXLog im_msvistalog + xm_json, as in OTRF Security-Datasets / Mordor 2020 files):
    OTRF/Security-Datasets, datasets/atomic/windows/discovery/host/
    covenant_ldap_searchrequest_domainuser_2020-08-06121307.json (SourceModuleType
    "im_msvistalog"): EventData fields are top-level string keys beside "EventID" (int),
    "SourceName" (provider), "Hostname" (computer), "Channel", "RecordNumber" (int),
    "EventTime" ("YYYY-MM-DD HH:MM:SS", no zone: NXLog writes it in the collector's LOCAL time;
    this script writes UTC), "ProviderGuid", "Version"/"Task"/"OpcodeValue" (int), "Keywords"
    (signed 64-bit int), "EventType"/"Severity" ("INFO"), "SeverityValue" (2),
    "ExecutionProcessID"/"ThreadID" (int), "UserID" (SID), "SourceModuleName",
    "SourceModuleType". Logstash-added keys (@timestamp, @version, host, port, tags) and the
    rendered "Message" (needs the publisher's message table) are not produced.
  * --flat-la (OTRF Security-Datasets 2022 exports, Log Analytics style):
    OTRF/Security-Datasets, datasets/atomic/windows/190518-ProcessInjection-CreateRemoteThread/
    WORKSTATION6_Windows_MicrosoftWindowsSysmonOperational_2022-09-22T12313339.json:
    "EventSourceName", "Provider", "ProviderGuid", "Level" (str), "Keywords" (hex str),
    "Channel", "Computer", "TimeCreated" (RFC 3339, ms, "Z"), "EventRecordID" (str),
    "EventID" (int), "Task" (str), "EventData" (the EventData XML as a string), then the
    EventData fields as top-level keys. (That file's TimeCreated/TimeGenerated are offset from
    UtcTime by hours although they end in "Z": importers should prefer UtcTime.)
  * --ecs (Winlogbeat 8.x, raw event as shipped, before the Elasticsearch sysmon pipeline):
    elastic/beats winlogbeat/sys/winevent/event.go (Event.Fields: winlog.event_id is
    fmt.Sprint(id), i.e. a STRING; record_id a uint64, i.e. a JSON number; channel,
    provider_name, provider_guid, computer_name, version, process.pid, process.thread.id,
    user.identifier), winlogbeat/eventlog/eventlog.go (Record.ToEvent: event.code = winlog.event_id,
    event.kind "event", event.provider = provider name, host.name = Computer, log.level =
    lower-cased level name, @timestamp = System/TimeCreated), winlogbeat/sys/winevent/maputil.go
    (AddPairs: empty EventData values are dropped, duplicate names keep the first, unnamed Data
    become "paramN", CRLF -> LF), winlogbeat/_meta/fields.common.yml (winlog.event_id and
    winlog.record_id mapped as keyword in 8.x), and the golden file
    x-pack/winlogbeat/module/sysmon/test/testdata/collection/sysmon-12-processcreate.evtx.golden.json
    ("event": {"code": "1", ...}, "winlog": {"event_id": "1", "record_id": 20, ...}).
    Elastic's docs page "Winlogbeat fields" (elastic.co/guide/en/beats/winlogbeat/8.0/
    exported-fields-winlog.html) lists the same names.
    NOTE: documents that went through the Winlogbeat sysmon ingest pipeline (what an
    Elasticsearch export usually holds) differ: Hashes, Image, ImageLoaded etc. are REMOVED
    from winlog.event_data and moved to process.hash.* / file.hash.* / process.executable /
    file.path, record_id becomes a string, and @timestamp is UtcTime (golden files under
    x-pack/winlogbeat/module/sysmon/test/testdata/ingest/). This script does not model that.
  * --ecs7: Winlogbeat 7.x wrote event.code and winlog.event_id as integers (older golden
    x-pack/winlogbeat/module/sysmon/test/testdata/sysmon-12-processcreate.evtx.golden.json).

A record python-evtx cannot render or whose XML cannot be parsed is skipped with a message
on stderr; a chunk that cannot be walked is skipped likewise. python-evtx silently drops
XML-restricted control characters (U+0001-U+0008 etc.) from values.
"""
import argparse
import copy
import datetime as dt
import json
import re
import signal
import sys
import xml.etree.ElementTree as ET

from Evtx import Evtx as EvtxModule
from Evtx import Nodes

SYSMON = "Microsoft-Windows-Sysmon"
NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"
FILETIME_EPOCH = dt.datetime(1601, 1, 1)


def _filetime_string(self):
    """Renders a FILETIME with its full 100 ns precision as RFC 3339 ("...1234567Z").

    python-evtx's own rendering goes through a float and datetime, which loses the 7th
    fraction digit and can be off by a microsecond; this uses the raw 64-bit value.
    """
    ticks = self.unpack_qword(0)
    seconds, frac = divmod(ticks, 10_000_000)
    try:
        moment = FILETIME_EPOCH + dt.timedelta(seconds=seconds)
    except OverflowError:
        return ""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{frac:07d}Z"


Nodes.FiletimeTypeNode.string = _filetime_string

UTCTIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?$")
SYSTEMTIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:Z|[+-]00:?00)?$")


def rfc3339(text, pattern):
    """Returns "YYYY-MM-DDTHH:MM:SS[.f]Z" (fraction <= 7 digits, trailing zeros trimmed) or None."""
    if text is None:
        return None
    m = pattern.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
    except ValueError:
        return None
    out = f"{y}-{mo}-{d}T{h}:{mi}:{s}"
    frac = (frac or "")[:7].rstrip("0")
    if frac:
        out += "." + frac
    return out + "Z"


def parse_hashes(text):
    found = {}
    for pair in text.split(","):
        alg, sep, value = pair.partition("=")
        if not sep:
            continue
        alg, value = alg.strip().upper(), value.strip().lower()
        if alg in ("SHA1", "MD5", "SHA256") and value and alg not in found:
            found[alg] = value
    return found


HEX_LEN = {"SHA1": 40, "MD5": 32, "SHA256": 64}
HEX = re.compile(r"^[0-9a-f]+$")


def absent(value):
    return value is None or value.strip() in ("", "-", "?")


def path_value(value):
    if absent(value) or value.startswith("<"):
        return None
    return value


def choose_path(event_id, data):
    if event_id == 1:
        return path_value(data.get("Image"))
    if event_id in (6, 7):
        return path_value(data.get("ImageLoaded"))
    if event_id in (15, 23, 26, 29):
        return path_value(data.get("TargetFilename"))
    for key in ("TargetFilename", "ImageLoaded", "Image"):
        found = path_value(data.get(key))
        if found is not None:
            return found
    return None


def split_path(path):
    if path is None:
        return None, None
    cut = max(path.rfind("\\"), path.rfind("/"))
    if cut < 0:
        return path, None
    return path[cut + 1:], path[:cut]


def fact(data, key):
    value = data.get(key)
    return None if absent(value) else value


class Event:
    """The parts of one rendered record that the modes need."""

    def __init__(self, root):
        system = root.find(NS + "System")
        self.system = system
        provider = system.find(NS + "Provider")
        self.provider = provider.get("Name") if provider is not None else None
        self.provider_guid = provider.get("Guid") if provider is not None else None
        self.event_id = int(self.text(system, "EventID"))
        self.record_id = int(self.text(system, "EventRecordID"))
        self.computer = self.text(system, "Computer")
        self.channel = self.text(system, "Channel")
        created = system.find(NS + "TimeCreated")
        self.system_time = created.get("SystemTime") if created is not None else None
        execution = system.find(NS + "Execution")
        self.pid = self.int_attr(execution, "ProcessID")
        self.tid = self.int_attr(execution, "ThreadID")
        security = system.find(NS + "Security")
        self.user_sid = security.get("UserID") if security is not None else None
        self.version = self.int_text(system, "Version")
        self.level = self.int_text(system, "Level")
        self.task = self.int_text(system, "Task")
        self.opcode = self.int_text(system, "Opcode")
        self.keywords = self.text(system, "Keywords")
        # EventData as an ordered list of (name, text); unnamed Data become paramN.
        self.pairs = []
        self.event_data_xml = None
        event_data = root.find(NS + "EventData")
        if event_data is not None:
            for i, item in enumerate(event_data.findall(NS + "Data")):
                name = item.get("Name") or f"param{i + 1}"
                self.pairs.append((name, item.text or ""))
        self.data = {}
        for name, value in self.pairs:
            self.data.setdefault(name, value)
        self._event_data_el = event_data

    @staticmethod
    def text(parent, tag):
        el = parent.find(NS + tag)
        return el.text if el is not None and el.text is not None else None

    @classmethod
    def int_text(cls, parent, tag):
        value = cls.text(parent, tag)
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    @staticmethod
    def int_attr(el, name):
        try:
            return int(el.get(name))
        except (AttributeError, TypeError, ValueError):
            return None

    def event_data_string(self):
        if self._event_data_el is None:
            return None
        ET.register_namespace("", NS[1:-1])
        element = copy.deepcopy(self._event_data_el)
        element.text = None
        for child in element:
            child.tail = None
        return ET.tostring(element, encoding="unicode")


def records(path):
    """Yields (record_number, Event) for each record python-evtx can render; logs the rest."""
    try:
        log = EvtxModule.Evtx(path)
        log.__enter__()
    except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, not fatal
        print(f"{path}: cannot open: {type(exc).__name__}: {exc}", file=sys.stderr)
        return
    try:
        header = log.get_file_header()
        try:
            if not header.check_magic():
                print(f"{path}: not an EVTX file (bad header magic)", file=sys.stderr)
                return
            declared = header.chunk_count()
            chunks = list(log.chunks())
        except Exception as exc:  # noqa: BLE001
            print(f"{path}: cannot walk chunks: {type(exc).__name__}: {exc}", file=sys.stderr)
            return
        if len(chunks) < declared:
            # python-evtx only walks whole 64 KiB chunks; a truncated tail is dropped.
            print(f"{path}: header declares {declared} chunks, {len(chunks)} present in full",
                  file=sys.stderr)
        for index, chunk in enumerate(chunks):
            if not chunk.check_magic():
                print(f"{path}: chunk {index}: bad magic, skipped", file=sys.stderr)
                continue
            try:
                for record in chunk.records():
                    try:
                        number = record.record_num()
                    except Exception:  # noqa: BLE001
                        number = None
                    try:
                        root = ET.fromstring(record.xml())
                        event = Event(root)
                    except Exception as exc:  # noqa: BLE001
                        print(f"{path}: record {number}: skipped: {type(exc).__name__}: {exc}",
                              file=sys.stderr)
                        continue
                    yield number, event
            except Exception as exc:  # noqa: BLE001
                print(f"{path}: chunk {index}: rest skipped: {type(exc).__name__}: {exc}",
                      file=sys.stderr)
    finally:
        log.__exit__(None, None, None)


def observe(path, event):
    """The observation or rejection for one event, or None when the event is not one."""
    if event.provider != SYSMON:
        return None
    hashes_text = event.data.get("Hashes")
    if not hashes_text:
        return None
    hashes = parse_hashes(hashes_text)
    if not hashes:
        return {"file": path, "recordId": event.record_id,
                "rejected": "Hashes holds none of SHA1, MD5, SHA256"}
    for alg, value in hashes.items():
        if len(value) != HEX_LEN[alg] or not HEX.match(value):
            print(f"{path}: record {event.record_id}: {alg} is not {HEX_LEN[alg]} hex digits: "
                  f"{value!r} (kept as given)", file=sys.stderr)
    timestamp = rfc3339(event.data.get("UtcTime"), UTCTIME)
    if timestamp is None:
        timestamp = rfc3339(event.system_time, SYSTEMTIME)
    file_name, folder_path = split_path(choose_path(event.event_id, event.data))
    signed_text = (event.data.get("Signed") or "").strip().lower()
    signed = True if signed_text == "true" else False if signed_text == "false" else None
    return {
        "file": path,
        "recordId": event.record_id,
        "eventId": event.event_id,
        "deviceId": event.computer,
        "timestamp": timestamp,
        "sha1": hashes.get("SHA1"),
        "sha256": hashes.get("SHA256"),
        "md5": hashes.get("MD5"),
        "fileName": file_name,
        "folderPath": folder_path,
        "signed": signed,
        "signature": fact(event.data, "Signature"),
        "signatureStatus": fact(event.data, "SignatureStatus"),
        "company": fact(event.data, "Company"),
        "product": fact(event.data, "Product"),
    }


NXLOG_LEVELS = {0: ("INFO", 2), 1: ("CRITICAL", 5), 2: ("ERROR", 4), 3: ("WARNING", 3),
                4: ("INFO", 2), 5: ("DEBUG", 1)}
WINLOG_LEVELS = {0: "information", 1: "critical", 2: "error", 3: "warning", 4: "information",
                 5: "verbose"}
WINLOG_OPCODES = {0: "Info", 1: "Start", 2: "Stop"}
# NXLog's own keys that an EventData field must not overwrite.
NXLOG_PROTECTED = {"EventID", "SourceName", "Hostname", "RecordNumber", "Channel"}


def signed_keywords(text):
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text)
    except (AttributeError, ValueError):
        return None
    return value - (1 << 64) if value >= (1 << 63) else value


def ms_timestamp(system_time):
    """RFC 3339 with exactly three fraction digits, as libbeat writes @timestamp."""
    m = SYSTEMTIME.match(system_time or "")
    if not m:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}.{(frac or '')[:3].ljust(3, '0')}Z"


def flat_nxlog(event):
    out = {}
    moment = rfc3339(event.system_time, SYSTEMTIME)
    if moment:
        out["EventTime"] = moment[:19].replace("T", " ")
    out["Hostname"] = event.computer
    keywords = signed_keywords(event.keywords)
    if keywords is not None:
        out["Keywords"] = keywords
    severity, severity_value = NXLOG_LEVELS.get(event.level, ("INFO", 2))
    out["EventType"] = severity
    out["SeverityValue"] = severity_value
    out["Severity"] = severity
    out["EventID"] = event.event_id
    out["SourceName"] = event.provider
    if event.provider_guid:
        out["ProviderGuid"] = event.provider_guid
    for key, value in (("Version", event.version), ("Task", event.task),
                       ("OpcodeValue", event.opcode)):
        if value is not None:
            out[key] = value
    out["RecordNumber"] = event.record_id
    if event.pid is not None:
        out["ExecutionProcessID"] = event.pid
    if event.tid is not None:
        out["ThreadID"] = event.tid
    out["Channel"] = event.channel
    if event.user_sid:
        out["UserID"] = event.user_sid
    for name, value in event.pairs:
        if name in NXLOG_PROTECTED:
            continue
        out[name] = value
    out["SourceModuleName"] = "eventlog"
    out["SourceModuleType"] = "im_msvistalog"
    return out


def flat_la(event):
    out = {
        "EventSourceName": event.provider,
        "Provider": event.provider,
        "ProviderGuid": event.provider_guid,
        "Level": None if event.level is None else str(event.level),
        "Keywords": event.keywords,
        "Channel": event.channel,
        "Computer": event.computer,
        "TimeCreated": ms_timestamp(event.system_time),
        "EventRecordID": str(event.record_id),
        "EventID": event.event_id,
        "EventData": event.event_data_string(),
        "Task": None if event.task is None else str(event.task),
    }
    out = {k: v for k, v in out.items() if v is not None}
    for name, value in event.pairs:
        out.setdefault(name, value)
    return out


def ecs(event, integer_ids):
    event_id = event.event_id if integer_ids else str(event.event_id)
    winlog = {"api": "wineventlog", "channel": event.channel, "computer_name": event.computer}
    event_data = {}
    for name, value in event.pairs:
        if value == "" or name in event_data:
            continue
        event_data[name] = value.replace("\r\n", "\n")
    if event_data:
        winlog["event_data"] = event_data
    winlog["event_id"] = event_id
    if event.opcode in WINLOG_OPCODES:
        winlog["opcode"] = WINLOG_OPCODES[event.opcode]
    process = {}
    if event.pid:
        process["pid"] = event.pid
    if event.tid:
        process["thread"] = {"id": event.tid}
    if process:
        winlog["process"] = process
    if event.provider_guid:
        winlog["provider_guid"] = event.provider_guid
    winlog["provider_name"] = event.provider
    winlog["record_id"] = event.record_id
    if event.user_sid:
        winlog["user"] = {"identifier": event.user_sid}
    if event.version:
        winlog["version"] = event.version
    out = {
        "@timestamp": ms_timestamp(event.system_time),
        "event": {"code": event_id, "kind": "event", "provider": event.provider},
        "host": {"name": event.computer},
    }
    if event.level in WINLOG_LEVELS:
        out["log"] = {"level": WINLOG_LEVELS[event.level]}
    out["winlog"] = winlog
    return out


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    for flag in ("--count", "--flat", "--flat-la", "--ecs", "--ecs7"):
        mode.add_argument(flag, action="store_true")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head
    sys.stdout.reconfigure(encoding="utf-8")

    def emit(obj):
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")

    for path in args.files:
        total = observations = 0
        for _number, event in records(path):
            total += 1
            if args.flat or args.flat_la or args.ecs or args.ecs7:
                if event.provider != SYSMON:
                    continue
                if args.flat:
                    emit(flat_nxlog(event))
                elif args.flat_la:
                    emit(flat_la(event))
                else:
                    emit(ecs(event, integer_ids=args.ecs7))
                continue
            found = observe(path, event)
            if found is None:
                continue
            if "rejected" not in found:
                observations += 1
            if not args.count:
                emit(found)
        if args.count:
            emit({"file": path, "records": total, "observations": observations})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
