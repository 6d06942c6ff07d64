#!/usr/bin/env bash
# Packs TensorFlow (the version this checkout's .venv holds) and the packages the lent GPU machine's image lacks
# into parts small enough to travel one per `run` call (the device tool carries at most 64 MiB a call).
# Runs HERE, with the network to the package registries. See .ci/device/README.md for the sequence of calls.
#
#   bash .ci/device/pack.sh [PYTHON_VERSION]    # default 3.12: the lent image's python3
#
# Writes .device/tfkit/part-NN and .device/tfkit/MANIFEST (ignored by git; .gitignore's /.device/), or to $KIT_DIR.
# XZ_LEVEL (default 9: 281 MB in five parts for TF 2.21; 6 gave 298 MB in six) trades time for size.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:-3.12}
KIT_DIR=${KIT_DIR:-.device/tfkit}
PART_MB=${PART_MB:-59}  # with the working tree (~2 MB), under the 64-MiB limit of a call
version() { .venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))"; }
TF=$(version tensorflow)
WORK=$(mktemp -d /tmp/tfkit-pack.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# What tensorflow and keras import that the image lacks (KINDS.md lists its packages), at this checkout's versions;
# CUDA 12's runtime because the wheel is built for CUDA 12 and the image has CUDA 13 (unpack.sh links the rest).
PACKAGES=(tensorflow=="$TF" keras=="$(version keras)" optree=="$(version optree)" protobuf=="$(version protobuf)"
          namex=="$(version namex)" astunparse gast google-pasta termcolor nvidia-cuda-runtime-cu12)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$WORK/wheels" "${PACKAGES[@]}"
mkdir -p "$WORK/site"
for wheel in "$WORK"/wheels/*.whl; do
    unzip -q -o "$wheel" -d "$WORK/site"
done
# Not needed to run: C++ headers (430 MB), and the profiler's TensorBoard plugin (88 MB; profiler_client.py
# imports it, so a stand-in module keeps `import tensorflow` whole).
rm -rf "$WORK/site/tensorflow/include"
plugin="$WORK/site/tensorflow/python/profiler/internal/_pywrap_profiler_plugin"
rm -f "$plugin".so
printf '%s\n' '"""Stand-in: the 88-MB profiler plugin was left out of the carried TensorFlow (.ci/device/pack.sh)."""' \
    'def trace(*args, **kwargs): raise NotImplementedError("not carried")' \
    'def monitor(*args, **kwargs): raise NotImplementedError("not carried")' > "$plugin".py
echo "packed tensorflow $TF for python $PY: $(du -sh "$WORK/site" | cut -f1) unpacked; compressing..."
rm -rf "$KIT_DIR" && mkdir -p "$KIT_DIR"
tar -C "$WORK/site" -cf - . | xz -T0 "-${XZ_LEVEL:-9}" > "$WORK/tfkit.tar.xz"
split -b "${PART_MB}M" -d -a 2 "$WORK/tfkit.tar.xz" "$KIT_DIR/part-"
{
    echo "tensorflow=$TF python=$PY"
    echo "parts=$(ls "$KIT_DIR"/part-* | wc -l)"
    echo "sha256=$(sha256sum "$WORK/tfkit.tar.xz" | cut -d' ' -f1)"
    (cd "$KIT_DIR" && sha256sum part-*) | sed -E 's/^([0-9a-f]+) +(part-[0-9]+)$/\2=\1/'  # each part's, checked as it lands
} > "$KIT_DIR/MANIFEST"
cat "$KIT_DIR/MANIFEST"
ls -l "$KIT_DIR"
