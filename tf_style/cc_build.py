"""Building tf_style/cc/saved_model_check.cc against the installed tensorflow wheel, cached.

The wheel ships TensorFlow's C++ libraries (``libtensorflow_cc.so.2``,
``libtensorflow_framework.so.2``) and headers (``tensorflow/include``), so the C++ loader that
TensorFlow Serving uses, ``tensorflow::LoadSavedModel``, can be called from a small program built
with g++ alone. Link order matters: ``libtensorflow_framework`` first and ``--no-as-needed``,
else the session factories' static registrations in ``libtensorflow_cc`` never run and loading
fails with "No session factory registered for the given session options".

The binary is cached in ``$XDG_CACHE_HOME/tf_style/cc`` (else ``~/.cache/tf_style/cc``) under a
hash of the source, the TensorFlow version and folder, the compiler and the command; it is built
into a temporary file and renamed into place, so concurrent builds cannot leave half a binary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import tempfile
import time

#: The C++ program (a real .cc file, shipped as package data).
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cc", "saved_model_check.cc")
#: What to install when the compiler is missing, by distribution family.
INSTALL_HINT = (
    "install g++ (Debian/Ubuntu: apt-get install g++; Fedora: dnf install gcc-c++) or set CXX to a C++17 compiler"
)


class CcError(RuntimeError):
    """The C++ program cannot be built or run here: no compiler, no headers, a failed compilation,
    a crash. The message says what was expected and what to install or look at."""


@dataclasses.dataclass(frozen=True)
class Toolchain:
    """What the program is built with: the compiler and the tensorflow wheel's folders."""

    cxx: str  # the compiler's absolute path
    cxx_version: str  # the line of `cxx -v` that says its version
    tf_version: str
    tf_lib: str  # the folder holding libtensorflow_cc.so.2 and libtensorflow_framework.so.2
    tf_include: str
    compile_flags: tuple[str, ...]  # tf.sysconfig's: the C++ standard, the ABI, Eigen's alignment


@dataclasses.dataclass(frozen=True)
class Binary:
    path: str
    cached: bool  # True: found in the cache; False: built now
    seconds: float  # the build's time (0 when cached)
    toolchain: Toolchain


def cache_root() -> str:
    """``$XDG_CACHE_HOME/tf_style/cc``, else ``~/.cache/tf_style/cc``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tf_style", "cc")


def find_toolchain(cxx: str | None = None) -> Toolchain:
    """The compiler (`cxx`, else $CXX, else g++) and the installed tensorflow's C++ files.

    Raises CcError naming what is missing and how to install it.
    """
    import tensorflow as tf

    name = cxx or os.environ.get("CXX") or "g++"
    path = shutil.which(name)
    if path is None:
        raise CcError(f"the C++ loader check needs a C++ compiler; no {name!r} on PATH: {INSTALL_HINT}")
    said = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=60)  # g++ and clang: on stderr
    version = next((line.strip() for line in (said.stderr + said.stdout).splitlines() if " version " in line), "")
    tf_include, tf_lib = tf.sysconfig.get_include(), tf.sysconfig.get_lib()
    expected = [os.path.join(tf_include, "tensorflow", "cc", "saved_model", "loader.h")]
    expected += [os.path.join(tf_lib, lib) for lib in ("libtensorflow_framework.so.2", "libtensorflow_cc.so.2")]
    missing = [p for p in expected if not os.path.exists(p)]
    if missing:
        raise CcError(
            "the C++ loader check needs the tensorflow wheel's C++ headers and libraries; "
            f"missing {', '.join(missing)} "
            f"(tensorflow {tf.__version__} at {tf_lib}): reinstall the tensorflow wheel with pip"
        )
    flags = tuple(f for f in tf.sysconfig.get_compile_flags() if not f.startswith("-I"))
    return Toolchain(path, version or os.path.basename(path), tf.__version__, tf_lib, tf_include, flags)


def command(toolchain: Toolchain, source: str, output: str) -> list[str]:
    """The compile-and-link command. Order matters (see the module docstring): the framework
    library before libtensorflow_cc, both kept by --no-as-needed, and an rpath to the wheel."""
    lib = toolchain.tf_lib
    return [
        toolchain.cxx, *toolchain.compile_flags, "-O1", "-w", f"-I{toolchain.tf_include}", source, "-o", output,
        f"-L{lib}", "-Wl,--no-as-needed", "-l:libtensorflow_framework.so.2", "-l:libtensorflow_cc.so.2",
        f"-Wl,-rpath,{lib}",
    ]


def cache_key(toolchain: Toolchain, source: str = SOURCE) -> str:
    """A hash of everything the binary depends on: the source, TensorFlow, the compiler, the command."""
    h = hashlib.sha256()
    with open(source, "rb") as f:
        h.update(f.read())
    parts = [toolchain.tf_version, os.path.realpath(toolchain.tf_lib), os.path.realpath(toolchain.cxx),
             toolchain.cxx_version, *command(toolchain, "SOURCE", "OUTPUT")]
    for part in parts:
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:20]


def build(
    cxx: str | None = None, cache: str | None = None, source: str = SOURCE, toolchain: Toolchain | None = None
) -> Binary:
    """The program for this tensorflow and compiler (`toolchain`, else `find_toolchain(cxx)`):
    from the cache (`cache`, else `cache_root()`), or built now, atomically."""
    toolchain = toolchain or find_toolchain(cxx)
    folder = cache or cache_root()
    path = os.path.join(folder, f"saved_model_check-{cache_key(toolchain, source)}")
    if os.access(path, os.X_OK):
        return Binary(path, True, 0.0, toolchain)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise CcError(f"cannot create the build cache {folder}: {e.strerror}; set XDG_CACHE_HOME to a writable folder")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-saved_model_check-", dir=folder)
    os.close(fd)
    started = time.perf_counter()
    try:
        proc = subprocess.run(command(toolchain, source, tmp), capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise CcError(
                f"{toolchain.cxx} ({toolchain.cxx_version}) could not build {source} against tensorflow "
                f"{toolchain.tf_version} at {toolchain.tf_lib}; expected a C++17 compiler; its last lines:\n{tail}"
            )
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)  # another run building the same key at once renames an equal file
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return Binary(path, False, time.perf_counter() - started, toolchain)


__all__ = ["Binary", "CcError", "SOURCE", "Toolchain", "build", "cache_key", "cache_root", "command", "find_toolchain"]
