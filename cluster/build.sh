#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kubectl from
# Debian's `kubernetes` source package (1.20.2, Go dependencies vendored).
#
# Idempotent: when the binaries are already cached this exits 0 at once.
#
# Cache layout (override with RELMAN_KUBE_CACHE):
#   ${RELMAN_KUBE_CACHE:-$HOME/.cache/relman/kube-1.20.2}/
#     bin/       kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl
#     apt/       private apt configuration (deb-src derived from this machine)
#     src/       unpacked source package (build tree)
#     gocache/   GOCACHE
set -euo pipefail

KUBE_VERSION="1.20.2"
CACHE="${RELMAN_KUBE_CACHE:-$HOME/.cache/relman/kube-${KUBE_VERSION}}"
BIN="$CACHE/bin"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
GO_PKG="golang-1.19-go"
GOROOT_BIN="/usr/lib/go-1.19/bin"

log() { printf '[relman build.sh] %s\n' "$*" >&2; }
die() {
    printf '\n[relman build.sh] ERROR: %s\n' "$*" >&2
    printf '[relman build.sh] ERROR: Kubernetes control-plane binaries were NOT built.\n' >&2
    exit 1
}

have_all() {
    local b
    for b in "${BINARIES[@]}"; do
        [[ -x "$BIN/$b" ]] || return 1
    done
    return 0
}

if have_all; then
    echo "$BIN"
    exit 0
fi

trap 'die "unexpected failure at line $LINENO (see output above)"' ERR

if [[ "$(id -u)" -ne 0 ]]; then
    SUDO="sudo"
else
    SUDO=""
fi

# ---------------------------------------------------------------------------
# 1. Toolchain and runtime dependencies from Debian.
# ---------------------------------------------------------------------------
# gcc + libc6-dev: the kubelet is built with cgo; the real node also builds its pause image with them.
PKGS=("$GO_PKG" rsync jq etcd-server dpkg-dev gcc libc6-dev)
missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y "${missing[@]}"; then
        log "apt-get install failed; running apt-get update and retrying"
        $SUDO apt-get update || die "apt-get update failed"
        $SUDO apt-get install -y "${missing[@]}" || die "apt-get install ${missing[*]} failed"
    fi
fi
[[ -x "$GOROOT_BIN/go" ]] || die "$GOROOT_BIN/go not found after installing $GO_PKG"
command -v etcd >/dev/null || die "etcd not found after installing etcd-server"

# ---------------------------------------------------------------------------
# 2. Private apt configuration with deb-src entries derived from the
#    machine's own (enabled) apt sources. No mirror host is hard-coded.
# ---------------------------------------------------------------------------
APTDIR="$CACHE/apt"
mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/sources.list.d"
SRC_LIST="$APTDIR/sources.list"

python3 - "$SRC_LIST" <<'PY'
"""Derive deb-src entries from /etc/apt/sources.list{,.d/*}."""
import glob
import re
import sys

out_path = sys.argv[1]
lines: list[str] = []


def one_line_file(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("deb ") or line.startswith("deb\t"):
                lines.append("deb-src" + line[3:])
            elif line.startswith("deb-src"):
                lines.append(line)


def deb822_file(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    # Drop comment lines, then split into paragraphs.
    kept = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    for para in re.split(r"\n\s*\n", "\n".join(kept)):
        fields: dict[str, str] = {}
        key = None
        for ln in para.splitlines():
            if not ln.strip():
                continue
            if ln[0] in " \t" and key is not None:
                fields[key] += " " + ln.strip()
                continue
            if ":" not in ln:
                continue
            key, val = ln.split(":", 1)
            key = key.strip().lower()
            fields[key] = val.strip()
        if not fields:
            continue
        if fields.get("enabled", "yes").lower() in ("no", "false", "0"):
            continue
        types = fields.get("types", "").split()
        if "deb" not in types and "deb-src" not in types:
            continue
        uris = fields.get("uris", "").split()
        suites = fields.get("suites", "").split()
        comps = fields.get("components", "").split()
        opts = []
        if "signed-by" in fields and fields["signed-by"].strip():
            sb = fields["signed-by"].strip()
            if sb.startswith("/") and " " not in sb:
                opts.append(f"signed-by={sb}")
        if "trusted" in fields:
            opts.append(f"trusted={fields['trusted']}")
        optstr = f" [{' '.join(opts)}]" if opts else ""
        for uri in uris:
            for suite in suites:
                lines.append(f"deb-src{optstr} {uri} {suite} {' '.join(comps)}".rstrip())


for p in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        one_line_file(p)
    except FileNotFoundError:
        pass
for p in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    deb822_file(p)

seen: set[str] = set()
uniq = [ln for ln in lines if not (ln in seen or seen.add(ln))]
if not uniq:
    sys.exit("no enabled apt sources found to derive deb-src entries from")
with open(out_path, "w", encoding="utf-8") as fh:
    fh.write("\n".join(uniq) + "\n")
PY

log "private deb-src sources:"
sed 's/^/    /' "$SRC_LIST" >&2

APT_OPTS=(
    -o "Dir::Etc::SourceList=$SRC_LIST"
    -o "Dir::Etc::SourceParts=$APTDIR/sources.list.d"
    -o "Dir::State::Lists=$APTDIR/lists"
    -o "Dir::Cache=$APTDIR/cache"
    -o "Dir::Cache::pkgcache="
    -o "Dir::Cache::srcpkgcache="
    -o "APT::Sandbox::User=root"
)

log "apt-get update (private configuration)"
apt-get "${APT_OPTS[@]}" update >&2 || die "apt-get update with the private deb-src configuration failed"

SRC_VERSION="$(apt-cache "${APT_OPTS[@]}" showsrc kubernetes 2>/dev/null \
    | awk '/^Package: kubernetes$/{p=1} p && /^Version:/{print $2; exit}')"
[[ -n "$SRC_VERSION" ]] || die "source package 'kubernetes' not found in the deb-src archives derived from this machine's apt sources"
case "$SRC_VERSION" in
    "$KUBE_VERSION"* | *"really$KUBE_VERSION"*) ;;
    *) die "source package kubernetes is version $SRC_VERSION, expected $KUBE_VERSION*" ;;
esac
log "kubernetes source version: $SRC_VERSION"

# ---------------------------------------------------------------------------
# 3. Fetch and unpack the source package.
# ---------------------------------------------------------------------------
SRCROOT="$CACHE/src"
mkdir -p "$SRCROOT"
TREE="$(find "$SRCROOT" -mindepth 1 -maxdepth 1 -type d -name "kubernetes-*" | head -n1 || true)"
if [[ -z "$TREE" || ! -f "$TREE/debian/rules" ]]; then
    log "apt-get source kubernetes=$SRC_VERSION"
    rm -rf "$SRCROOT"
    mkdir -p "$SRCROOT"
    (cd "$SRCROOT" && apt-get "${APT_OPTS[@]}" source "kubernetes=$SRC_VERSION" >&2) \
        || die "apt-get source kubernetes failed"
    TREE="$(find "$SRCROOT" -mindepth 1 -maxdepth 1 -type d -name "kubernetes-*" | head -n1 || true)"
fi
[[ -n "$TREE" && -d "$TREE/vendor" ]] || die "unpacked kubernetes source tree (with vendor/) not found under $SRCROOT"
log "source tree: $TREE"

# ---------------------------------------------------------------------------
# 4. Build the way debian/rules does (make WHAT=cmd/..., vendored, no proxy).
# ---------------------------------------------------------------------------
export PATH="$GOROOT_BIN:$PATH"
export GOPROXY=off
export GOFLAGS=-mod=vendor
export GO111MODULE=on
# No CGO_ENABLED here: hack/lib/golang.sh builds the server binaries static itself and the
# kubelet with cgo, as upstream release builds do.
export GOCACHE="$CACHE/gocache"
export GOPATH="$CACHE/gopath"
export GOTOOLCHAIN=local
export KUBE_GIT_TREE_STATE=clean
export KUBE_GIT_VERSION="v${KUBE_VERSION}"
export KUBE_GIT_MAJOR="1"
export KUBE_GIT_MINOR="${KUBE_VERSION#1.}"
KUBE_GIT_MINOR="${KUBE_GIT_MINOR%%.*}"
export KUBE_GIT_MINOR
export KUBE_GIT_COMMIT="debian-${SRC_VERSION}"
export KUBE_BUILD_PLATFORMS="linux/$(go env GOARCH)"
mkdir -p "$GOCACHE" "$GOPATH" "$CACHE/home"

log "go: $(go version)"
start=$(date +%s)
WHAT=""
for b in "${BINARIES[@]}"; do WHAT="$WHAT cmd/$b"; done
WHAT="${WHAT# }"
log "make WHAT=\"$WHAT\" (takes several minutes)"
(cd "$TREE" && env HOME="$CACHE/home" make WHAT="$WHAT" >&2) || die "make WHAT=\"$WHAT\" failed in $TREE"
end=$(date +%s)
log "build took $((end - start))s"

mkdir -p "$BIN"
for b in "${BINARIES[@]}"; do
    f="$(find "$TREE/_output" -type f -name "$b" -perm -u+x 2>/dev/null | head -n1 || true)"
    [[ -n "$f" ]] || die "built binary $b not found under $TREE/_output"
    install -m 0755 "$f" "$BIN/$b.tmp"
    mv -f "$BIN/$b.tmp" "$BIN/$b"
done
have_all || die "binaries missing from $BIN after build"
"$BIN/kube-apiserver" --version >&2 || die "kube-apiserver does not run"
trap - ERR
if [[ "${RELMAN_KUBE_KEEP_SRC:-0}" != "1" ]]; then
    log "removing build tree $SRCROOT (set RELMAN_KUBE_KEEP_SRC=1 to keep it)"
    rm -rf "$SRCROOT" "$GOCACHE" "$GOPATH"
fi
log "done"
echo "$BIN"
