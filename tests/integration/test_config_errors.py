# Issue 2, bad input: every malformed config in the corpus makes wanbalanced exit 78 with the
# file, the JSON path and the problem, and leaves the kernel untouched; `check` agrees.

import pytest

import labkit

CORPUS = labkit.REPO / "tests" / "configs"
BAD = sorted((CORPUS / "bad").glob("*.json"))
GOOD = sorted((CORPUS / "good").glob("*.json"))


@pytest.fixture(scope="module")
def shared_lab():
    ok, reason = labkit.lab_available()
    if not ok:
        pytest.skip(reason)
    with labkit.Lab() as lab:
        yield lab


def test_corpus_is_big_enough():
    assert len(BAD) >= 15


@pytest.mark.parametrize("config", BAD, ids=[p.stem for p in BAD])
def test_bad_config_exits_78_and_touches_nothing(shared_lab, need_build, config, tmp_path):
    lab = shared_lab
    expected = (config.with_suffix(".expect")).read_text().strip().replace("{FILE}", str(config))
    before = lab.kernel_state()
    proc = lab.run("rtr", [str(need_build["wanbalanced"]), "--config", str(config),
                           "--runtime-dir", str(tmp_path / "run")], check=False, timeout=10)
    assert proc.returncode == 78, proc
    assert expected in proc.stderr, proc.stderr
    assert lab.kernel_state() == before
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    check = lab.run("rtr", [str(need_build["wanbalancectl"]), "check", "--config", str(config)],
                    check=False)
    assert check.returncode == 78
    assert expected in check.stderr


@pytest.mark.parametrize("config", GOOD, ids=[p.stem for p in GOOD])
def test_good_configs_pass_check(need_build, config):
    import subprocess
    proc = subprocess.run([str(need_build["wanbalancectl"]), "check", "--config", str(config)],
                          text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout


def test_missing_config_file(shared_lab, need_build, tmp_path):
    missing = tmp_path / "nope.json"
    proc = shared_lab.run("rtr", [str(need_build["wanbalanced"]), "--config", str(missing),
                                  "--runtime-dir", str(tmp_path / "run")], check=False)
    assert proc.returncode == 78
    assert (f"{missing}: cannot read: No such file or directory; start from the example the "
            "package ships, /usr/share/doc/wanbalance/examples/wanbalance.json") in proc.stderr


def test_check_counts_rules_and_policies(need_build):
    import subprocess
    config = CORPUS / "good" / "rules.json"
    proc = subprocess.run([str(need_build["wanbalancectl"]), "check", "--config", str(config)],
                          text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{config}: OK: 2 WANs (charter, integra), 1 LAN, 4 rules, 1 policy\n"
