"""The documentation pages stay true to the code: every environment variable the package reads
and every `JobStore` argument is in docs/configuration.md, every stage rule is in docs/stages.md,
every public name is in docs/api.md, and every relative link between pages resolves."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import jobstore
from jobstore import JobStore
from jobstore.stages import STAGE_RULES, StageRules

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OWNED_BY_OTHERS_OR_LATER = {"benchmarks.md"}


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def environment_variables() -> set[str]:
    """Every ``JOBSTORE_*`` name the package reads from the environment."""
    found: set[str] = set()
    for path in (ROOT / "src" / "jobstore").rglob("*.py"):
        found.update(re.findall(r"environ(?:\.get)?[\(\[]\s*\"(JOBSTORE_[A-Z_]+)\"",
                                path.read_text(encoding="utf-8")))
    return found


def test_configuration_names_every_environment_variable_the_package_reads() -> None:
    """Each ``JOBSTORE_*`` variable read anywhere in src/ has a row in configuration.md."""
    names = environment_variables()
    assert {"JOBSTORE_URL", "JOBSTORE_TABLE", "JOBSTORE_STAGE"} <= names
    text = page("configuration.md")
    assert [n for n in sorted(names) if f"| `{n}` |" not in text] == []


def test_configuration_names_every_jobstore_argument() -> None:
    """Each parameter of ``JobStore.__init__`` has a row in configuration.md's argument table."""
    parameters = [p for p in inspect.signature(JobStore.__init__).parameters if p != "self"]
    text = page("configuration.md")
    assert [p for p in parameters if f"| `{p}` |" not in text] == []


def test_stages_page_lists_every_rule_of_the_stage_table() -> None:
    """Each field of `StageRules` appears in stages.md, with a row for each stage's name."""
    text = page("stages.md")
    fields = list(StageRules.__dataclass_fields__)
    assert [f for f in fields if f"`{f}`" not in text] == []
    assert [s.value for s in STAGE_RULES if f"| `{s.value}` |" not in text] == []


def test_api_page_documents_every_public_name() -> None:
    """Each name in ``jobstore.__all__`` is documented in api.md."""
    text = page("api.md")
    assert [name for name in jobstore.__all__ if f"`{name}`" not in text] == []


@pytest.mark.parametrize("name", sorted(p.name for p in DOCS.glob("*.md")))
def test_every_relative_link_of_a_page_resolves(name: str) -> None:
    """A link to another page or file in the repository points at something that exists, and
    a link to a section points at a heading of that page."""
    text = page(name)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path_part, _, anchor = target.partition("#")
        path = (DOCS / path_part).resolve() if path_part else DOCS / name
        if path.name in OWNED_BY_OTHERS_OR_LATER and not path.exists():
            continue
        if not path.exists():
            broken.append(target)
            continue
        if anchor and path.suffix == ".md":
            headings = [_slug(h) for h in re.findall(r"^#+ (.+)$", path.read_text(), re.M)]
            if anchor not in headings:
                broken.append(target)
    assert broken == []


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")
