"""README's "Examples" section lists every example with the command that runs it, and sits
right after "What is in it"."""

from __future__ import annotations

import re

from tests.examples.conftest import EXAMPLES, MODEL_SCRIPTS, ROOT

README = (ROOT / "README.md").read_text()


def examples_section() -> str:
    match = re.search(r"^## Examples\n(.*?)^## ", README, flags=re.DOTALL | re.MULTILINE)
    assert match, "README has no '## Examples' section"
    return match.group(1)


def test_examples_section_follows_what_is_in_it() -> None:
    headings = re.findall(r"^## (.+)$", README, flags=re.MULTILINE)
    assert headings[headings.index("What is in it") + 1] == "Examples"


def test_every_example_is_listed_with_its_command() -> None:
    section = examples_section()
    files = [
        p
        for p in EXAMPLES.rglob("*")
        if p.is_file()
        and p.suffix in {".py", ".ipynb", ".md"}
        and not p.name.startswith("_")
        and "runs" not in p.relative_to(EXAMPLES).parts
    ]
    assert len(files) == len(MODEL_SCRIPTS) + 3
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        assert f"]({relative})" in section, f"{relative} is not linked from README's Examples"
    for script in MODEL_SCRIPTS:
        command = f"python {script.relative_to(ROOT).as_posix()} --epochs"
        assert command in section, f"README's Examples does not show `{command} N`"
    assert "jupyter execute examples/getting_started.ipynb" in section
    assert "python examples/serve_and_call.py --url" in section
