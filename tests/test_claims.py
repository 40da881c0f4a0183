"""tinydiff.claims: a chapter's sentences about its own run are checked, printed with a verdict, and fail the run."""

import pytest

from tinydiff import claims


@pytest.fixture(autouse=True)
def fresh_book():
    claims.set_mode(quick=False)
    yield
    claims.set_mode(quick=False)


def test_a_true_claim_prints_its_numbers_and_passes(capsys):
    assert claims.claim(0.51 > 0.05, "not told apart: p = {p:.2f}", p=0.514)
    assert "claim [pass] not told apart: p = 0.51" in capsys.readouterr().out


def test_numbers_the_text_does_not_name_are_appended(capsys):
    claims.claim(True, "slope near 2", slope=1.98, nfe=40)
    assert "slope near 2 (slope = 1.98, nfe = 40)" in capsys.readouterr().out


def test_a_text_naming_a_missing_number_is_an_error():
    with pytest.raises(KeyError, match="names \\['p'\\]"):
        claims.claim(True, "p = {p:.3f}")


def test_a_false_claim_is_reported_and_finish_exits_with_status_1(capsys):
    claims.claim(True, "first")
    assert not claims.claim(False, "the gap is {gap:.1f}", gap=3.0)
    claims.claim(False, "second failure")
    with pytest.raises(SystemExit) as stop:
        claims.finish()
    assert stop.value.code == 1
    out, err = capsys.readouterr()
    assert "claim [FAIL] the gap is 3.0" in out
    assert "1 passed, 2 failed" in out
    assert "the gap is 3.0" in err and "second failure" in err   # every failure is listed, not just the first


def test_finish_returns_when_every_claim_holds(capsys):
    claims.claim(True, "holds")
    claims.finish()
    assert "claims (full mode): 1 passed, 0 failed, 0 not judged" in capsys.readouterr().out


def test_quick_mode_gives_no_verdict_on_a_claim_marked_quick_false(capsys):
    claims.set_mode(quick=True)
    assert claims.claim(False, "needs a large sample", quick=False)
    claims.finish()   # no exit: the claim was not judged
    out = capsys.readouterr().out
    assert "claim [not judged in quick mode] needs a large sample" in out
    assert "[FAIL]" not in out and "[pass]" not in out


def test_quick_mode_still_judges_the_other_claims():
    claims.set_mode(quick=True)
    claims.claim(False, "exact, whatever the sample size")
    with pytest.raises(SystemExit):
        claims.finish()


def test_full_mode_judges_claims_marked_quick_false():
    claims.claim(False, "needs a large sample", quick=False)
    assert claims.book().failures() == ["needs a large sample"]


def test_chapter_args_hands_the_quick_flag_to_the_claims(tmp_path, monkeypatch):
    from tinydiff import viz

    monkeypatch.setattr("sys.argv", ["chapter", "--quick", "--out", str(tmp_path)])
    viz.chapter_args(1)
    assert claims.book().quick
    monkeypatch.setattr("sys.argv", ["chapter", "--out", str(tmp_path)])
    viz.chapter_args(1)
    assert not claims.book().quick
