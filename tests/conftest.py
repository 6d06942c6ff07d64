"""Shared test set-up: quiet TensorFlow, absl flags usable under pytest, small real images."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# No test touches the network: an empty Keras cache, and any download goes to a proxy on a
# closed loopback port, so it fails at once without a packet leaving the machine.
# Nor does one read or leave state outside the test's own folders: the C++ loader check's build cache
# (tf_style.cc_build) starts empty too, so the suite compiles and links it as a first-time user does.
for _var, _prefix in (("KERAS_HOME", "tf_style_keras_home_"), ("XDG_CACHE_HOME", "tf_style_cache_")):
    os.environ[_var] = tempfile.mkdtemp(prefix=_prefix)
    atexit.register(shutil.rmtree, os.environ[_var], True)  # each process (xdist worker) removes its own
for _var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
    os.environ[_var] = "http://127.0.0.1:9"
for _var in ("no_proxy", "NO_PROXY"):
    os.environ.pop(_var, None)
# Config.dtype_policy="auto" decides from the CPU's flags (tf_style.precision): every test, and every
# tool a test runs, sees a CPU without bfloat16 instructions, so that its numbers are the same on every
# machine. Tests of "auto" itself set the flags they need.
os.environ["TF_STYLE_CPU_FLAGS"] = ""

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from absl import flags  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tf_style", "data")
CONTENT_PATH = os.path.join(DATA, "chelsea.jpg")
STYLE_PATH = os.path.join(DATA, "hubble_deep_field.jpg")

U32 = 2.0**-24  # float32's unit roundoff
#: Roundings a gradient of the cut VGG19 (13 conv layers to block5_conv1) passes through, forward and back, each
#: with the arithmetic's unit roundoff (tests/test_dtype_policy.py: reduced precision, where that dominates).
NETWORK_ROUNDINGS = 2 * 13
#: The input channels of the 13 convolutions to block5_conv1: each output is a sum of K = 9 C products.
CONV_INPUT_CHANNELS = (3, 64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512)
#: lambda of the probabilistic rounding-error bound (Higham & Mary, SIAM J. Sci. Comput. 2019, Thm 2.4): a K-term
#: float32 sum in any order lies within lambda sqrt(K) u of its exact value, relative to the sum of the terms'
#: magnitudes, with probability at least 1 - 2K exp(-lambda^2 / 2) (lambda = 6: 1 - 1e-4 for K = 4608), where the
#: worst case, K u, is never approached by sums of many terms of varied sign.
LAMBDA = 6.0


def network_rtol() -> float:
    """How far one forward and backward pass of the cut VGG19 may lie from the same pass summed in another order
    (relative to its scale): two sums in different orders, lambda sqrt(K) u each, at every conv layer both ways."""
    return 2 * 2 * LAMBDA * U32 * sum(np.sqrt(9 * c) for c in CONV_INPUT_CHANNELS)  # ~8.4e-4


def graph_rtol(evaluations: int) -> float:
    """How far a loss may lie from the same one computed in another graph of the same float32 ops (eager and traced,
    the library's and an export's: an op fused in one and not the other sums in another order), after `evaluations`
    evaluations counting the one reported: to first order the differences of the steps before it add up."""
    return evaluations * network_rtol()


def gamma(n: int) -> float:
    """gamma_n = n u / (1 - n u): the relative error bound of n float32 roundings in a chain (Higham, ch. 3)."""
    return n * U32 / (1 - n * U32)


def pytest_configure(config):
    # absl flags start unparsed under pytest; reading one would raise UnparsedFlagAccessError.
    flags.FLAGS.mark_as_parsed()


@pytest.fixture(autouse=True)
def signal_handlers_restored():
    """Puts SIGINT's and SIGTERM's handlers back after each test. A test that runs the command line in-process
    may leave them ignored (`cli.exit_interrupted` does, so that a second Ctrl-C cannot cut the exit short), and
    every process a later test starts in this worker would inherit that."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.fixture(scope="session")
def content_path() -> str:
    return CONTENT_PATH


@pytest.fixture(scope="session")
def style_path() -> str:
    return STYLE_PATH


@pytest.fixture(scope="session")
def content_image() -> np.ndarray:
    """The shipped photo, float32 RGB [0, 255], longest side 64."""
    from tf_style import images

    return images.resize_longest(images.load_image(CONTENT_PATH), 64)


@pytest.fixture(scope="session")
def style_image() -> np.ndarray:
    """The shipped style image, float32 RGB [0, 255], longest side 64."""
    from tf_style import images

    return images.resize_longest(images.load_image(STYLE_PATH), 64)


@pytest.fixture(scope="session")
def random_vgg():
    """The test backbone: VGG19 with average pooling and seeded random weights (no download)."""
    from tf_style import vgg

    return vgg.build_vgg19(weights=None, pooling="avg", seed=0)


@pytest.fixture(scope="module")
def objective(random_vgg, content_image, style_image):
    """The paper's objective (its layers, alpha = 1, beta = 1e3) on the test backbone, the photo and the style image."""
    from tf_style.config import PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS
    from tf_style.features import FeatureExtractor
    from tf_style.objective import StyleObjective

    extractor = FeatureExtractor(random_vgg, PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS)
    return StyleObjective(extractor, extractor.content_targets(content_image[None]),
                          extractor.style_targets(style_image[None]), content_weight=1.0, style_weight=1e3)
