"""`make mutation`: its list stays applicable, and its verdicts mean what they say."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops import mutation
from ops.mutation import Mutant

# Every component the list must plant bugs in (issue: across every component).
AREAS = {
    "components/serving/profiles.py",
    "components/settings/stack.py",
    "components/settings/schema.py",
    "components/serving/capacity.py",
    "components/facts/timeline.py",
    "components/serving/workload.py",
    "components/serving/endpoint.py",
    "components/aws/network.py",
    "components/aws/cluster.py",
    "components/aws/gpu_nodes.py",
    "components/aws/launch_template.py",
    "components/kubernetes/device_plugin.py",
    "components/kubernetes/load_balancer_controller.py",
    "components/kubernetes/pod_security.py",
    "components/kubernetes/network_policy.py",
    "policies/rules/hardening.py",
    "policies/rules/common.py",
    "ops/preflight.py",
}


def test_every_listed_mutant_still_applies_exactly_once():
    mutants = mutation.load()
    assert [(m.id, mutation.staleness(m)) for m in mutants if mutation.staleness(m)] == []
    assert len(mutants) >= 30
    assert AREAS <= {m.file for m in mutants}
    for m in mutants:
        assert m.breaks.strip(), m.id
        for target in m.tests:
            assert (mutation.ROOT / target.split("::")[0]).is_file(), (m.id, target)


def test_a_snippet_no_longer_in_its_file_is_stale_and_fails_the_check(monkeypatch, capsys):
    gone = Mutant("gone", "components/serving/profiles.py", "this text is not in the file", "x", "nothing")
    assert "not found" in mutation.staleness(gone)
    twice = Mutant("twice", "components/serving/profiles.py", "import", "x", "nothing")
    assert "make it unique" in mutation.staleness(twice)
    monkeypatch.setattr(mutation, "load", lambda: [gone])
    assert mutation.main(["--check"]) == 2
    assert "STALE" in capsys.readouterr().out


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # A one-file project: pytest there needs none of the installed plugins (faster start).
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    (tmp_path / "calc.py").write_text("def double(a):\n    return a + a\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_calc.py").write_text(
        "from calc import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
    )
    # The list's own tests always fail in a mutated copy (the snippet is gone): never run there.
    (tmp_path / "tests" / "test_mutation.py").write_text("def test_list():\n    assert False\n")
    return tmp_path


def test_killed_survived_and_equivalent_verdicts_and_the_file_is_put_back(tree):
    original = (tree / "calc.py").read_text()
    killed = mutation.run_mutant(Mutant("minus", "calc.py", "a + a", "a - a", "zero"), tree)
    assert killed.status == "killed" and "test_double" in killed.detail
    # 2 * 2 == 2 + 2: the only test cannot tell them apart.
    survivor = Mutant("times", "calc.py", "a + a", "a * a", "squares")
    assert mutation.run_mutant(survivor, tree).status == "survived"
    explained = Mutant("times", "calc.py", "a + a", "a * a", "squares", equivalent="only 2 is ever doubled")
    outcome = mutation.run_mutant(explained, tree)
    assert outcome.status == "equivalent" and not outcome.bad
    wrong_note = Mutant("minus", "calc.py", "a + a", "a - a", "zero", equivalent="claimed harmless")
    assert mutation.run_mutant(wrong_note, tree).status == "contradicted"
    assert (tree / "calc.py").read_text() == original
