"""README.md against the code it documents: the names, flags and lists a user copies from it.

A review found the README promising `tf_style.schedule.plan` after a plain `import tf_style` (an
AttributeError), an export flag list missing five settings and four refusals, and "the command's own"
flags missing two: each test here fails on that drift.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from absl import flags

from tf_style import cli, export
from tf_style.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(REPO, "README.md"), encoding="utf-8") as _file:
    README = _file.read()


def section(heading: str) -> str:
    """The README's text under `heading` (a whole heading line) up to the next heading of any level."""
    start = README.index(f"\n{heading}\n") + len(heading) + 2
    following = re.search(r"^#{1,6} ", README[start:], re.M)
    return README[start:start + following.start()] if following else README[start:]


def flag_names(text: str) -> list[str]:
    """Every `--name` in `text`, in order (a backticked run of several counts each)."""
    return re.findall(r"(?<![\w-])--([a-z][a-z0-9_]*)", text)


def test_every_dotted_tf_style_name_in_the_readme_is_reachable_after_a_plain_import():
    names = sorted(set(re.findall(r"\btf_style(?:\.[A-Za-z_]\w*)+", README)))
    assert len(names) > 30, names  # the building-blocks table alone names more
    # A fresh process: in this one other tests have imported submodules, which makes them attributes of the package
    # whether or not `import tf_style` offers them. The first name after `tf_style.` must be one the package offers
    # before anything else is touched (a submodule imported by another's import would hide a missing one).
    script = (
        "import functools, sys, tf_style\n"
        "offered = set(dir(tf_style))\n"
        "for name in sys.argv[1:]:\n"
        "    parts = name.split('.')[1:]\n"
        "    if parts[0] not in offered:\n"
        "        print('not offered:', name)\n"
        "        continue\n"
        "    try:\n"
        "        functools.reduce(getattr, parts, tf_style)\n"
        "    except AttributeError as e:\n"
        "        print('missing:', name, e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


def test_the_flag_table_lists_every_flag_of_tf_style_and_no_other():
    text = section("## Command line")
    rows = re.findall(r"^\| `--([a-z0-9_]+)` \|", text, re.M)
    own = sorted(f.name for f in flags.FLAGS.get_flags_for_module(cli.MODULE))
    assert len(rows) == len(set(rows)), rows
    assert sorted(rows) == own


def test_the_commands_own_flags_are_those_that_are_no_setting():
    sentence = re.search(r"with the same name and default; (.*?)\s+are the command's own\.", README, re.S).group(1)
    own = sorted(f.name for f in flags.FLAGS.get_flags_for_module(cli.MODULE) if f.name not in cli.FIELDS)
    assert sorted(flag_names(sentence)) == own == ["config_from", "content", "dry_run", "output", "style"]


def test_the_export_section_lists_exactly_the_settings_the_export_offers_and_refuses():
    text = section("### Export")
    offered = re.search(r"export can honour, with the same defaults \(`--help` lists them\): `([^`]*)`", text.replace("\n", " "))
    refused = text[text.index("Not offered"):text.index("`--image_size` is the longest side")]
    assert sorted(flag_names(offered.group(1))) == sorted(f for f in Config.field_names() if f not in export.UNSUPPORTED_FIELDS)
    assert sorted(flag_names(refused)) == sorted(export.UNSUPPORTED_FIELDS)  # each once, with its reason
