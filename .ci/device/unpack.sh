#!/usr/bin/env bash
# Runs THERE (the lent GPU machine), at the start of every call that carries a part of .ci/device/pack.sh's kit:
# keeps the part in $KIT/parts; once all of MANIFEST's parts have come, checks the archive's SHA-256, unpacks it
# into $KIT/site, links the image's CUDA 13 libraries under the CUDA 12 names TensorFlow's wheel opens, and writes
# $KIT/env.sh (source it to run TensorFlow from the kit) once TensorFlow imports. The machine keeps /tmp only while
# it stays warm (30 s after a call), so the calls must follow one another at once. See .ci/device/README.md.
# Nothing carried is dropped before the kit works: a failed or cut-short unpack is tried again by the next call.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
SRC=${KIT_SRC:-.device/tfkit}
KIT=${KIT:-/tmp/tfkit}
[ -f "$KIT/env.sh" ] && { echo "tfkit: already unpacked in $KIT"; exit 0; }
mkdir -p "$KIT/parts"
if [ -f "$KIT/MANIFEST" ] && ! cmp -s "$SRC/MANIFEST" "$KIT/MANIFEST"; then
    echo "tfkit: another pack than the parts held here: starting over"
    rm -rf "$KIT/parts" && mkdir -p "$KIT/parts"
fi
cp "$SRC/MANIFEST" "$KIT/MANIFEST"
want=$(sed -n 's/^parts=//p' "$KIT/MANIFEST")
names=$(for ((i = 0; i < want; i++)); do printf 'part-%02d ' "$i"; done)
missing=""
for name in $names; do
    if [ -e "$SRC/$name" ]; then
        cp "$SRC/$name" "$KIT/parts/$name"
        expected=$(sed -n "s/^$name=//p" "$KIT/MANIFEST")
        if [ -n "$expected" ] && [ "$(sha256sum < "$KIT/parts/$name" | cut -d' ' -f1)" != "$expected" ]; then
            echo "tfkit: $name arrived damaged (SHA-256 differs from MANIFEST's): carry it again"
            rm -f "$KIT/parts/$name"
        fi
    fi
    [ -e "$KIT/parts/$name" ] || missing="$missing $name"
done
if [ -n "$missing" ]; then
    echo "tfkit: $((want - $(wc -w <<< "$missing"))) of $want parts in $KIT/parts; still to carry:$missing"
    exit 0
fi
(cd "$KIT/parts" && cat $names) > "$KIT/tfkit.tar.xz"
if ! echo "$(sed -n 's/^sha256=//p' "$KIT/MANIFEST")  $KIT/tfkit.tar.xz" | sha256sum -c --quiet; then
    rm -f "$KIT/tfkit.tar.xz"
    echo "tfkit: the parts do not add up to the packed archive (SHA-256 differs); sizes: $(cd "$KIT/parts" && ls -l $names)"
    exit 1
fi
rm -rf "$KIT/site" "$KIT/site.partial" "$KIT/lib" && mkdir -p "$KIT/site.partial" "$KIT/lib"
xz -dc -T0 "$KIT/tfkit.tar.xz" | tar -x -C "$KIT/site.partial"
mv "$KIT/site.partial" "$KIT/site"
rm -f "$KIT/tfkit.tar.xz"
# TensorFlow's wheel is built for CUDA 12.5 and opens these libraries by their CUDA 12 names; the image has CUDA 13
# (pip's nvidia-* packages beside its torch). Link each under the name TensorFlow asks for, and put every folder
# holding one on LD_LIBRARY_PATH (cuDNN 9 opens its sub-libraries by their own names). CUDA 12's runtime came in
# the kit (nvidia/cuda_runtime, on the wheel's RUNPATH). An unsupported mixture that ran TF 2.21 on an H100 once.
roots=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)
roots="$roots /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu"
dirs=""
for spec in cublas:12 cublasLt:12 cufft:11 cusolver:11 cusparse:12 curand:10 nvJitLink:12 cupti:12 cudnn:9 nccl:2; do
    name=${spec%:*} major=${spec#*:}
    # The folders already used first (cuBLASLt from cuBLAS's install, not another copy), then every root; the highest
    # version by file name (libcublas.so.13.1.0.3 over libcublas.so.13); never a toolkit's stubs.
    found=""
    for where in "${dirs//:/ }" "$roots"; do
        # shellcheck disable=SC2086
        [ -n "${where// /}" ] && found=$(find $where -name "lib$name.so.*" -printf '%f %p\n' 2>/dev/null \
            | grep -v -e "^[^ ]* $KIT/" -e /stubs/ | sort -V | tail -n 1 | cut -d' ' -f2- || true)
        [ -n "$found" ] && break
    done
    if [ -z "$found" ]; then
        echo "tfkit: lib$name.so.* not found in the image ($roots); TensorFlow may run without what it gives"
        continue
    fi
    ln -sf "$found" "$KIT/lib/lib$name.so.$major"
    echo "tfkit: lib$name.so.$major -> $found"
    case ":$dirs:" in *":$(dirname "$found"):"*) ;; *) dirs="$dirs:$(dirname "$found")" ;; esac
done
cat > "$KIT/env.sh.partial" <<ENV
export PYTHONPATH=$KIT/site:$REPO\${PYTHONPATH:+:\$PYTHONPATH}
export LD_LIBRARY_PATH=$KIT/lib$dirs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export TF_CPP_MIN_LOG_LEVEL=\${TF_CPP_MIN_LOG_LEVEL:-1}
ENV
# The kit counts as unpacked (env.sh, the parts dropped) only once TensorFlow imports from it.
(
    # shellcheck disable=SC1091
    . "$KIT/env.sh.partial"
    python3 -c 'import tensorflow as tf; print("tfkit: tensorflow", tf.__version__, "sees", tf.config.list_physical_devices())'
) || { echo "tfkit: TensorFlow does not import from the kit (above); the parts are kept in $KIT/parts"; exit 1; }
mv "$KIT/env.sh.partial" "$KIT/env.sh"
rm -rf "$KIT/parts"
