"README.md is generated from nbs/index.ipynb and gives the one test command that .ci/run runs."
import importlib.util, pathlib, re

ROOT = pathlib.Path(__file__).resolve().parents[1]

def _build_docs():
    spec = importlib.util.spec_from_file_location('build_docs', ROOT/'nbs'/'build_docs.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

def test_readme_is_generated_from_index():
    assert (ROOT/'README.md').read_text() == _build_docs().readme_text(), \
        'README.md is out of date: run `python nbs/build_docs.py --readme`'

def test_ci_runs_the_readme_test_command():
    cmds = [l.strip() for l in (ROOT/'README.md').read_text().splitlines() if 'nbdev-test' in l and 'pip install' in l]
    assert len(cmds) == 1, cmds
    assert re.search(r"'nbdev-test' in l and 'pip install' in l", (ROOT/'.ci'/'run').read_text())
    assert cmds[0].endswith('nbdev-test && pytest -q tests')
