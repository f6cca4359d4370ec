#!/usr/bin/env bash
# Builds our container images without Docker: static musl binaries, a busybox base layer from
# Debian's busybox-static package, and one OCI image layout tarball per image, which
# `ctr -n k8s.io images import FILE` takes as it is. Then checks every tarball (see `verify`).
#
#   hack/images.sh [build] [OUTDIR]   build the binaries and the four images into OUTDIR
#                                     (default ${CARGO_TARGET_DIR:-target}/images)
#   hack/images.sh verify DIR         re-read and check the tarballs in DIR
#   hack/images.sh import-check DIR NODE_BIN
#                                     (root) import them into a throw-away containerd from
#                                     NODE_BIN (containerd, ctr, runc, shim: the node build of
#                                     hack/cluster.sh) and run each: --version, the install-cni
#                                     steps, pause and testpod stopping on SIGTERM
#
# Images (tag: the chart's appVersion, or $SPIDERPOOL_IMAGE_TAG):
#   localhost/spiderpool-rs/spiderpool-agent       busybox + spiderpool-agent, spiderpool, coordinator
#   localhost/spiderpool-rs/spiderpool-controller  busybox + spiderpool-controller, spiderpool-init
#   localhost/spiderpool-rs/pause                  busybox; a sandbox process that exits on SIGTERM
#   localhost/spiderpool-rs/testpod                busybox (sh, sleep, ip, ping, ...); sleeps
#   localhost/spiderpool-rs/multus                 busybox + Multus' thin plugin (the chart's
#                                                  optional Multus; from hack/node-testbin.sh)
#
# The last lines of a successful run are one `REFERENCE=TARBALL` per image (split at the first
# `=`), e.g. `localhost/spiderpool-rs/pause:0.1.0=/work/target-release/images/pause-0.1.0.tar`.
#
# Environment: CARGO_TARGET_DIR (where the release builds go: keep it apart from a debug target
# directory other builds use, e.g. /work/target-release), SPIDERPOOL_IMAGE_TAG,
# SPIDERPOOL_TESTBIN_CACHE (default /var/cache/spiderpool-testbin: the busybox-static .deb).
# Needs: cargo + rustup (target x86_64-unknown-linux-musl, added when missing), a musl C
# compiler for ring (Debian: musl-tools), apt-get + dpkg-deb (only to fetch busybox once),
# python3. docs/images.md describes the images and their sizes.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
cache=${SPIDERPOOL_TESTBIN_CACHE:-/var/cache/spiderpool-testbin}
target_dir=${CARGO_TARGET_DIR:-target}
prefix=localhost/spiderpool-rs

die() { echo "images.sh: $*" >&2; exit 1; }

mode=build
case "${1:-}" in
    verify) mode=verify; shift; [ $# -eq 1 ] || die "usage: hack/images.sh verify DIR" ;;
    import-check) mode=import-check; shift
        [ $# -eq 2 ] || die "usage: hack/images.sh import-check DIR NODE_BIN"
        node_bin=$2; set -- "$1" ;;
    build) shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
esac
[ $# -le 1 ] || die "too many arguments (see --help)"

tag=${SPIDERPOOL_IMAGE_TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/spiderpool/Chart.yaml)}
[ -n "$tag" ] || die "no appVersion in charts/spiderpool/Chart.yaml"

# --- the OCI writer and checker (python3: JSON, sha256, deterministic tar and gzip) -----------
oci_py=$(cat <<'PY'
import gzip, hashlib, io, json, os, stat, struct, subprocess, sys, tarfile, tempfile

MTIME = 0  # every entry; a fixed value keeps digests stable and verify independent of the environment
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# What the agent's install-cni init container runs (charts/spiderpool/templates/agent-daemonset.yaml).
SHELL_TOOLS = ["sh", "cp", "chmod", "mv", "cat", "ls", "sleep", "ip", "ping"]


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def tar_bytes(entries):
    """entries: (name, kind, mode, data-or-linkname); sorted by name, root-owned, fixed mtime."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, kind, mode, data in sorted(entries, key=lambda e: e[0]):
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname, ti.mode = MTIME, 0, 0, "root", "root", mode
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def gz(b):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0, filename="") as g:
        g.write(b)
    return out.getvalue()


def dirs_of(paths):
    ds = set()
    for p in paths:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            ds.add("/".join(parts[:i]))
    return ds


def base_layer(busybox_root):
    bb = open(os.path.join(busybox_root, "bin/busybox"), "rb").read()
    applets = subprocess.run([os.path.join(busybox_root, "bin/busybox"), "--list"],
                             check=True, capture_output=True, text=True).stdout.split()
    entries = [("bin/busybox", "file", 0o755, bb)]
    entries += [("bin/" + a, "symlink", 0o777, "busybox") for a in applets if a != "busybox"]
    copyright_ = os.path.join(busybox_root, "usr/share/doc/busybox-static/copyright")
    entries.append(("usr/share/doc/busybox-static/copyright", "file", 0o644,
                    open(copyright_, "rb").read()))
    entries.append(("etc/passwd", "file", 0o644,
                    b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
    entries.append(("etc/group", "file", 0o644, b"root:x:0:\nnogroup:x:65534:\n"))
    dirs = dirs_of([e[0] for e in entries]) | {"usr/bin", "root", "proc", "sys", "dev", "run"}
    entries += [(d, "dir", 0o755, None) for d in dirs]
    entries += [("tmp", "dir", 0o1777, None)]
    missing = [t for t in SHELL_TOOLS if t not in applets]
    if missing:
        sys.exit(f"images.sh: busybox lacks applets {missing}")
    return tar_bytes(entries)


def app_layer(bins):
    entries = [("usr/bin/" + name, "file", 0o755, open(path, "rb").read()) for name, path in bins]
    entries += [("usr", "dir", 0o755, None), ("usr/bin", "dir", 0o755, None)]
    return tar_bytes(entries)


def image_tar(ref, tag, layers, entrypoint, cmd, title):
    """layers: uncompressed tars. Returns the OCI layout tarball's bytes."""
    blobs = {}
    layer_descs, diff_ids = [], []
    for raw in layers:
        z = gz(raw)
        blobs[sha(z)] = z
        layer_descs.append({"mediaType": MT_LAYER, "digest": sha(z), "size": len(z)})
        diff_ids.append(sha(raw))
    cfg = {"Env": [PATH_ENV], "WorkingDir": "/",
           "Labels": {"org.opencontainers.image.title": title,
                      "org.opencontainers.image.version": tag}}
    if entrypoint:
        cfg["Entrypoint"] = entrypoint
    if cmd:
        cfg["Cmd"] = cmd
    config = canon({"created": "1970-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
                    "config": cfg, "rootfs": {"type": "layers", "diff_ids": diff_ids},
                    "history": [{"created": "1970-01-01T00:00:00Z",
                                 "created_by": "hack/images.sh"} for _ in layers]})
    blobs[sha(config)] = config
    manifest = canon({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                      "config": {"mediaType": MT_CONFIG, "digest": sha(config), "size": len(config)},
                      "layers": layer_descs})
    blobs[sha(manifest)] = manifest
    index = canon({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [{
        "mediaType": MT_MANIFEST, "digest": sha(manifest), "size": len(manifest),
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag}}]})
    entries = [("oci-layout", "file", 0o644, canon({"imageLayoutVersion": "1.0.0"})),
               ("index.json", "file", 0o644, index),
               ("blobs", "dir", 0o755, None), ("blobs/sha256", "dir", 0o755, None)]
    entries += [("blobs/sha256/" + d.split(":", 1)[1], "file", 0o644, b) for d, b in blobs.items()]
    return tar_bytes(entries)


def build(spec):
    base = base_layer(spec["busybox_root"])
    out = []
    for img in spec["images"]:
        layers = [base] + ([app_layer(img["bins"])] if img["bins"] else [])
        data = image_tar(img["ref"], spec["tag"], layers, img["entrypoint"], img["cmd"], img["title"])
        tmp = img["path"] + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, img["path"])
        out.append(img["path"])


# --- verify --------------------------------------------------------------------------------
class Bad(Exception):
    pass


def read_tar(path):
    files = {}
    with tarfile.open(path, "r:") as tf:
        for m in tf.getmembers():
            if m.isfile():
                files[m.name] = tf.extractfile(m).read()
    return files


def blob(files, desc, what):
    alg, _, hexd = desc["digest"].partition(":")
    if alg != "sha256":
        raise Bad(f"{what}: digest algorithm {alg}")
    name = f"blobs/sha256/{hexd}"
    if name not in files:
        raise Bad(f"{what}: blob {name} missing")
    b = files[name]
    if sha(b) != desc["digest"]:
        raise Bad(f"{what}: {name} has digest {sha(b)}")
    if len(b) != desc["size"]:
        raise Bad(f"{what}: {name} is {len(b)} bytes, descriptor says {desc['size']}")
    return b


def elf_interp(data):
    """The ELF's PT_INTERP (dynamic loader), or None for a static binary."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise Bad("not a 64-bit little-endian ELF")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 3:
            return data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
    return None


def run_ok(path, name):
    if name in ("spiderpool", "coordinator"):
        r = subprocess.run([path], input=b'{"cniVersion":"1.0.0"}', capture_output=True,
                           env={"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"}, timeout=30)
        ok = r.returncode == 0 and b"supportedVersions" in r.stdout
        how = "CNI_COMMAND=VERSION"
    elif name == "busybox":
        r = subprocess.run([path, "true"], capture_output=True, timeout=30)
        ok, how = r.returncode == 0, "busybox true"
    else:
        r = subprocess.run([path, "--version"], capture_output=True, timeout=30)
        ok, how = r.returncode == 0, "--version"
    if not ok:
        raise Bad(f"{name}: `{how}` exited {r.returncode}: {r.stderr.decode(errors='replace')[:300]}")
    return how


def verify_one(path, expect):
    files = read_tar(path)
    if json.loads(files.get("oci-layout", b"{}")).get("imageLayoutVersion") != "1.0.0":
        raise Bad("oci-layout missing or not version 1.0.0")
    index = json.loads(files["index.json"])
    if index.get("schemaVersion") != 2 or len(index.get("manifests", [])) != 1:
        raise Bad("index.json: want schemaVersion 2 and one manifest")
    mdesc = index["manifests"][0]
    ann = mdesc.get("annotations", {})
    ref, tag = ann.get("io.containerd.image.name", ""), ann.get("org.opencontainers.image.ref.name", "")
    if not ref or not tag or not ref.endswith(":" + tag):
        raise Bad(f"index.json: image name {ref!r} and ref.name {tag!r} disagree")
    if mdesc.get("mediaType") != MT_MANIFEST:
        raise Bad("index.json: manifest media type")
    manifest = json.loads(blob(files, mdesc, "manifest"))
    if manifest.get("mediaType") != MT_MANIFEST or manifest.get("config", {}).get("mediaType") != MT_CONFIG:
        raise Bad("manifest: media types")
    config = json.loads(blob(files, manifest["config"], "config"))
    if (config.get("architecture"), config.get("os")) != ("amd64", "linux"):
        raise Bad("config: platform is not linux/amd64")
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    if len(diff_ids) != len(manifest["layers"]):
        raise Bad("config: diff_ids and layers differ in number")
    tree = {}
    for i, (ldesc, diff_id) in enumerate(zip(manifest["layers"], diff_ids)):
        if ldesc.get("mediaType") != MT_LAYER:
            raise Bad(f"layer {i}: media type {ldesc.get('mediaType')}")
        raw = gzip.decompress(blob(files, ldesc, f"layer {i}"))
        if sha(raw) != diff_id:
            raise Bad(f"layer {i}: uncompressed digest {sha(raw)}, config says {diff_id}")
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
            for m in tf.getmembers():
                if m.uid != 0 or m.gid != 0 or m.mtime != MTIME:
                    raise Bad(f"layer {i}: {m.name} not root-owned or not at the fixed mtime")
                tree[m.name] = (m, tf.extractfile(m).read() if m.isfile() else None)
    cfg = config.get("config", {})
    argv = (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or [])
    if not argv:
        raise Bad("config: neither Entrypoint nor Cmd")

    def resolve(p):
        p = p.lstrip("/")
        for _ in range(8):
            m, _ = tree.get(p, (None, None))
            if m is None:
                raise Bad(f"/{p} missing")
            if not m.issym():
                return p
            p = os.path.normpath(os.path.join(os.path.dirname(p), m.linkname)).lstrip("/")
        raise Bad(f"/{p}: symlink loop")

    resolve(argv[0])
    checked = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in [b[0] for b in expect["bins"]] + ["busybox"]:
            p = resolve(("usr/bin/" if name != "busybox" else "bin/") + name)
            m, data = tree[p]
            if not m.mode & stat.S_IXUSR:
                raise Bad(f"/{p} not executable")
            interp = elf_interp(data)
            if interp:
                raise Bad(f"/{p} is dynamically linked (interpreter {interp})")
            local = os.path.join(tmp, name)
            with open(local, "wb") as f:
                f.write(data)
            os.chmod(local, 0o755)
            checked.append(f"{name} ({len(data)} B, static, {run_ok(local, name)} ok)")
    for t in SHELL_TOOLS:
        resolve("bin/" + t)
    return ref, checked


def verify(spec):
    bad = 0
    for img in spec["images"]:
        try:
            ref, checked = verify_one(img["path"], img)
            if ref != img["ref"]:
                raise Bad(f"named {ref}, want {img['ref']}")
            print(f"verified {os.path.basename(img['path'])} = {ref}: {'; '.join(checked)}")
        except (Bad, KeyError, ValueError, OSError, tarfile.TarError, subprocess.SubprocessError) as e:
            bad += 1
            print(f"images.sh: {img['path']}: {e}", file=sys.stderr)
    if bad:
        sys.exit(1)


spec = json.load(sys.stdin)
{"build": build, "verify": verify}[sys.argv[1]](spec)
PY
)

# One JSON line per image: short name, binaries in /usr/bin, Entrypoint, Cmd. A tarball is
# named SHORT-TAG.tar.
images_json() { # $1 outdir, $2 plugin dir, $3 image-profile dir, $4 busybox root, $5 multus dir
    local out=$1 p=$2 i=$3
    python3 - "$out" "$p" "$i" "$4" "$tag" "$prefix" "$5" <<'PY'
import json, sys
out, p, i, bb, tag, prefix, m = sys.argv[1:]
# SIGTERM ends the sandbox / test container at once: busybox sleep as a PID namespace's init
# ignores SIGTERM (it sets no handler), so every pod deletion would wait for the grace period.
sleep = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep 2147483647 & wait"]
images = [
    ("spiderpool-agent", [("spiderpool-agent", i), ("spiderpool", p), ("coordinator", p)],
     ["/usr/bin/spiderpool-agent"], None),
    ("spiderpool-controller", [("spiderpool-controller", i), ("spiderpool-init", i)],
     ["/usr/bin/spiderpool-controller"], None),
    ("pause", [], sleep, None),
    ("testpod", [], None, sleep),
    # The chart's multus DaemonSet runs its own script; the plugin is what it installs.
    ("multus", [("multus", m)], sleep, None),
]
spec = {"tag": tag, "busybox_root": bb, "images": [{
    "ref": f"{prefix}/{name}:{tag}", "title": name, "path": f"{out}/{name}-{tag}.tar",
    "bins": [(b, f"{d}/{b}") for b, d in bins], "entrypoint": ep, "cmd": cmd,
} for name, bins, ep, cmd in images]}
json.dump(spec, sys.stdout)
PY
}

# A throw-away containerd (own root, state and socket in a temporary directory, CRI off): what
# `ctr -n k8s.io images import` on the node does, then one container per image.
import_check() { # $1 dir, $2 node bin dir
    local dir=$1 nb=$2 d pid n ok
    for n in containerd ctr runc containerd-shim-runc-v2; do
        [ -x "$nb/$n" ] || die "$nb/$n missing"
    done
    [ "$(id -u)" = 0 ] || die "import-check needs root (containerd)"
    d=$(mktemp -d /tmp/images-check.XXXXXX)
    cat >"$d/config.toml" <<CONFIG
version = 3
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.nri.v1.nri"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
CONFIG
    PATH="$nb:$PATH" "$nb/containerd" --config "$d/config.toml" >"$d/containerd.log" 2>&1 &
    pid=$!
    # Expanded now: the trap runs after this function's locals are gone.
    # shellcheck disable=SC2064
    trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf '$d'" EXIT
    ctr() { "$nb/ctr" -a "$d/containerd.sock" -n k8s.io "$@" 2>"$d/ctr.err" || { cat "$d/ctr.err" >&2; return 1; }; }
    for _ in $(seq 1 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
    ctr version >/dev/null || { tail -n 20 "$d/containerd.log" >&2; die "containerd did not start"; }
    for n in spiderpool-agent spiderpool-controller pause testpod; do
        ctr images import "$dir/$n-$tag.tar" >/dev/null || die "import of $n-$tag.tar failed"
        ctr images ls -q | grep -qx "$prefix/$n:$tag" || die "$prefix/$n:$tag not listed after import"
    done
    echo "imported: $(ctr images ls -q | tr '\n' ' ')"
    local run=(run --rm --runc-binary "$nb/runc")
    # The agent DaemonSet's install-cni steps (charts/spiderpool/templates/agent-daemonset.yaml).
    # shellcheck disable=SC2016
    ctr "${run[@]}" "$prefix/spiderpool-agent:$tag" ic-agent /bin/sh -ec '
        spiderpool-agent --version
        mkdir -p /host/opt/cni/bin
        for b in spiderpool coordinator; do
            cp "/usr/bin/$b" "/host/opt/cni/bin/.$b.new"
            chmod 0755 "/host/opt/cni/bin/.$b.new"
            mv -f "/host/opt/cni/bin/.$b.new" "/host/opt/cni/bin/$b"
            echo "{\"cniVersion\":\"1.0.0\"}" | CNI_COMMAND=VERSION "/host/opt/cni/bin/$b" | grep -q supportedVersions
        done
        echo "agent image: install-cni steps ok"' || die "agent image: a check failed"
    ctr "${run[@]}" "$prefix/spiderpool-controller:$tag" ic-controller /bin/sh -ec \
        'spiderpool-controller --version; spiderpool-init --version' || die "controller image: a check failed"
    for n in pause testpod; do
        ctr run -d --runc-binary "$nb/runc" "$prefix/$n:$tag" "ic-$n" >/dev/null || die "$n: run failed"
        sleep 0.5
        ctr task kill -s SIGTERM "ic-$n" || die "$n: kill failed"
        ok=0
        for _ in $(seq 1 50); do
            ctr task ls | grep -q "^ic-$n .*STOPPED" && { ok=1; break; }
            sleep 0.1
        done
        [ "$ok" = 1 ] || die "$n: still running 5 s after SIGTERM"
        echo "$n: stopped on SIGTERM"
        { ctr task rm "ic-$n" >/dev/null && ctr containers rm "ic-$n"; } || die "$n: clean-up failed"
    done
    echo "import-check: the four images imported and ran"
}

if [ "$mode" = import-check ]; then
    import_check "$1" "$node_bin"
    exit 0
fi

if [ "$mode" = verify ]; then
    dir=$1
    [ -d "$dir" ] || die "$dir is not a directory"
    images_json "$dir" /nonexistent /nonexistent /nonexistent /nonexistent | python3 -c "$oci_py" verify
    exit 0
fi

command -v python3 >/dev/null || die "python3 is needed"
out=${1:-$target_dir/images}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# --- binaries ------------------------------------------------------------------------------
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi
# ring compiles C and assembly for the target: cc-rs looks for x86_64-linux-musl-gcc.
command -v x86_64-linux-musl-gcc >/dev/null 2>&1 || command -v musl-gcc >/dev/null 2>&1 \
    || die "no musl C compiler (ring needs one): apt-get install musl-tools"
if ! command -v x86_64-linux-musl-gcc >/dev/null 2>&1; then
    export CC_x86_64_unknown_linux_musl=musl-gcc
fi
t0=$(date +%s)
# The plugins: size-optimised, panic=abort (Cargo.toml [profile.release-plugins]). The
# long-running binaries: [profile.image], unwinding kept for their per-request catch_unwind.
CARGO_TARGET_DIR=$target_dir cargo build --profile release-plugins --target "$target" \
    -p spiderpool -p coordinator
CARGO_TARGET_DIR=$target_dir cargo build --profile image --target "$target" \
    -p spiderpool-agent -p spiderpool-controller
echo "images.sh: binaries ready in $(( $(date +%s) - t0 )) s"
plugins=$(cd "$target_dir/$target/release-plugins" && pwd)
bins=$(cd "$target_dir/$target/image" && pwd)

# --- Multus' thin plugin (Go, static), built and cached with the test node's binaries ----------
multus_bin=$(eval "$(hack/node-testbin.sh)" && echo "$MULTUS") \
    || die "hack/node-testbin.sh failed (Multus' thin plugin)"
multus_dir=$(dirname "$multus_bin")

# --- busybox base --------------------------------------------------------------------------
bbdir=$cache/busybox
deb=$(ls "$bbdir"/busybox-static_*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
    mkdir -p "$bbdir"
    (cd "$bbdir" && apt-get download busybox-static) || die "apt-get download busybox-static failed"
    deb=$(ls "$bbdir"/busybox-static_*.deb | head -n 1)
fi
bbroot=$bbdir/root
if [ ! -x "$bbroot/bin/busybox" ] || [ "$deb" -nt "$bbroot/bin/busybox" ]; then
    rm -rf "$bbroot.tmp" && mkdir -p "$bbroot.tmp"
    dpkg-deb -x "$deb" "$bbroot.tmp"
    rm -rf "$bbroot" && mv "$bbroot.tmp" "$bbroot"
fi

# --- images (skipped when nothing they are made of changed) --------------------------------
spec=$(images_json "$out" "$plugins" "$bins" "$bbroot" "$multus_dir")
stamp=$( { printf '%s\n' "$tag" "$spec" "$oci_py"; \
    sha256sum "$deb" "$plugins/spiderpool" "$plugins/coordinator" "$bins/spiderpool-agent" \
    "$bins/spiderpool-controller" "$bins/spiderpool-init" "$multus_bin" | cut -d' ' -f1; } | sha256sum | cut -d' ' -f1)
names=(spiderpool-agent spiderpool-controller pause testpod multus)
fresh=1
for n in "${names[@]}"; do [ -f "$out/$n-$tag.tar" ] || fresh=0; done
if [ "$fresh" = 1 ] && [ "$(cat "$out/.inputs" 2>/dev/null)" = "$stamp" ]; then
    echo "images.sh: images up to date (inputs unchanged)"
else
    rm -f "$out/.inputs"
    printf '%s' "$spec" | python3 -c "$oci_py" build
    echo "$stamp" > "$out/.inputs"
fi
printf '%s' "$spec" | python3 -c "$oci_py" verify

for n in "${names[@]}"; do
    printf '%-26s %10d bytes (tarball)  %s\n' "$n" "$(stat -c %s "$out/$n-$tag.tar")" "$out/$n-$tag.tar"
done
for n in "${names[@]}"; do
    echo "$prefix/$n:$tag=$out/$n-$tag.tar"
done
