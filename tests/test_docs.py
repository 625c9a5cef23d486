"""The documentation site: `nbs/build_docs.py` fails on broken docs, and built pages render in headless Chromium.

By default the site fixture builds a small subset (the front page and one API page) with `--execute`. CI builds the
whole site once and points the tests at it with `FASTPRUNE_DOCS=_docs` (a path relative to the repository root).
`FASTPRUNE_DOCS_API_NB` picks the API notebook (default `22_schedules.ipynb`, cheap to run; its page must show a plot).
The browser checks drive Chromium through chromedriver's W3C WebDriver HTTP API with the standard library only; they
are skipped, with the reason, where the Debian packages `chromium` and `chromium-driver` are not installed.
"""
import base64, json, os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
BUILDER = ROOT/'nbs'/'build_docs.py'
FRONT_NB, API_NB = 'index.ipynb', os.environ.get('FASTPRUNE_DOCS_API_NB', '22_schedules.ipynb')
CHROME_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', '--window-size=1280,1000']
CHROME = next(filter(None, map(shutil.which, ('chromium', 'chromium-browser', 'google-chrome'))), None)
DRIVER = shutil.which('chromedriver')
needs_chromium = pytest.mark.skipif(not (CHROME and DRIVER), reason=(
    'headless Chromium not available (chromium: %s, chromedriver: %s): install the Debian packages '
    '`chromium chromium-driver` (as .ci/run does) to run the browser checks' % (CHROME, DRIVER)))

def page_of(nb):
    from nbdev.config import nbpath2html
    return nbpath2html(Path(nb)).as_posix()

def run_builder(*args):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    return subprocess.run([sys.executable, str(BUILDER), *args], capture_output=True, text=True, cwd=ROOT, env=env)

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "Folder of a built site holding the front page and the API page"
    if os.environ.get('FASTPRUNE_DOCS'):
        out = ROOT/os.environ['FASTPRUNE_DOCS']
        assert (out/'index.html').exists(), f'FASTPRUNE_DOCS={out} holds no index.html: run `python nbs/build_docs.py --execute` first'
        return out
    out = tmp_path_factory.mktemp('site')/'_docs'
    r = run_builder('--execute', '--only', FRONT_NB, API_NB, '--out', str(out), '--n-workers', '2')
    assert r.returncode == 0, f'docs build failed:\n{r.stdout}\n{r.stderr}'
    return out

def soup(path): return BeautifulSoup(path.read_text(), 'html.parser')

def test_pages_have_navigation_and_api_docs(site):
    front, api = soup(site/'index.html'), soup(site/page_of(API_NB))
    for page in front, api:
        sections = [h.get_text() for h in page.select('nav.sidebar h2.nav-section')]
        assert 'Getting started' in sections and 'API/Foundation' in sections, sections
        assert page.select('nav.sidebar a[href$="index.html"]'), 'the sidebar links the front page'
    assert front.select_one('nav.sidebar a.active')['href'] == 'index.html'
    assert api.select_one('nav.sidebar a.active')['href'] == page_of(API_NB)
    # show_doc entries: a heading per symbol, with its rendered signature
    entries = api.select('.celltag_showdoc h3[id]')
    assert entries, 'the API page has show_doc entries'
    assert all(h.find_next('pre') is not None for h in entries)
    # hidden and exported cells are not on the page, their directives neither
    assert not [p for p in api.select('.input_area pre') if p.get_text().lstrip().startswith('#|')]

def write_nb(path, cells):
    "Write a notebook from (cell_type, source) pairs"
    nb = dict(nbformat=4, nbformat_minor=5, metadata=dict(kernelspec=dict(name='python3', display_name='python3', language='python')),
              cells=[dict(cell_type=t, id=f'c{i}', metadata={}, source=s, **(dict(outputs=[], execution_count=None) if t == 'code' else {}))
                     for i, (t, s) in enumerate(cells)])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))

def test_build_fails_and_lists_every_problem(tmp_path):
    nbs = tmp_path/'nbs'
    (nbs).mkdir()
    (nbs/'_quarto.yml').write_text('website:\n  sidebar:\n    contents:\n      - section: Pages\n        contents: "*.ipynb"\n')
    title = lambda t: ('markdown', f'# {t}\n> What {t} is about.')
    write_nb(nbs/'index.ipynb', [title('Home')])
    write_nb(nbs/'good.ipynb', [title('Good'), ('markdown', 'See [the bad one](raises.ipynb) and [a section](#a-plot).\n\n## A plot'),
                                ('code', 'import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0]);')])
    write_nb(nbs/'raises.ipynb', [title('Raises'), ('code', 'x = 1\n1/0')])
    write_nb(nbs/'dead.ipynb', [title('Dead'), ('markdown', '[gone](nowhere.ipynb), [no anchor](good.ipynb#nope) and [here](#missing)')])
    # exports to the real fastprune.data without documenting its public names
    write_nb(nbs/'nodoc.ipynb', [('code', '#| default_exp data'), title('No docs')])
    out = tmp_path/'_docs'
    r = run_builder('--nbs', str(nbs), '--out', str(out), '--execute', '--n-workers', '2')
    assert r.returncode == 1, r.stdout + r.stderr
    err = r.stderr
    assert 'raises.ipynb: failed to build' in err and 'ZeroDivisionError' in err
    assert "dead.html: dead link 'nowhere.html'" in err
    assert "dead.html: link 'good.html#nope': good.html has no anchor #nope" in err
    assert "dead.html: link '#missing': dead.html has no anchor #missing" in err
    assert 'nodoc.ipynb: public symbol(s) not documented: ' in err and 'fastprune.data.digits_dls' in err
    # the good page was built anyway, its plot embedded as a PNG, and its links are fine
    good = soup(out/'good.html')
    assert good.select_one('main img')['src'].startswith('data:image/png;base64,')
    assert '- good.html:' not in err and '- index.html:' not in err

@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    b = WebDriverChromium(tmp_path_factory.mktemp('chromium-profile'))
    yield b
    b.close()

PAGE_STATE = """
const nav = document.querySelector('nav.sidebar'), imgs = [...document.querySelectorAll('main img')];
return {title: document.title, h1: (document.querySelector('h1.page-title') || {}).textContent,
        nav_links: nav ? [...nav.querySelectorAll('a')].map(a => a.textContent) : [],
        nav_width: nav ? nav.getBoundingClientRect().width : 0, nav_position: nav ? getComputedStyle(nav).position : null,
        active: nav && nav.querySelector('a.active') ? nav.querySelector('a.active').getAttribute('href') : null,
        imgs: imgs.map(i => ({complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))};
"""

@needs_chromium
@pytest.mark.parametrize('nb', [FRONT_NB, API_NB])
def test_page_renders_in_chromium(site, browser, nb, tmp_path):
    page = page_of(nb)
    browser.get((site/page).resolve().as_uri())
    s = browser.js(PAGE_STATE)
    browser.screenshot(tmp_path/'page.png')
    assert s['h1'] and s['title'].startswith(s['h1']), s
    assert len(s['nav_links']) >= 2 and s['nav_width'] > 100, f'the sidebar is shown: {s}'
    assert s['nav_position'] == 'sticky', f'styles.css is applied: {s}'
    assert s['active'] == Path(page).name, s
    assert all(i['complete'] and i['width'] > 0 and i['height'] > 0 for i in s['imgs']), f'every image decoded: {s["imgs"]}'
    if nb == API_NB: assert s['imgs'], f'{page} shows a plot'
    assert (tmp_path/'page.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

class WebDriverChromium:
    "Headless Chromium driven through chromedriver's W3C WebDriver HTTP API: the standard library is enough"
    def __init__(self, profile_dir, timeout=60):
        with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
        self.base = f'http://127.0.0.1:{port}'
        self.http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        self.driver = subprocess.Popen([DRIVER, f'--port={port}'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.sid = None
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if self._call('GET', '/status').get('ready'): break
                except OSError: pass
                if time.monotonic() > deadline or self.driver.poll() is not None: raise RuntimeError('chromedriver did not start')
                time.sleep(0.2)
            opts = {'binary': CHROME, 'args': CHROME_FLAGS + [f'--user-data-dir={profile_dir}']}
            caps = {'capabilities': {'alwaysMatch': {'browserName': 'chrome', 'goog:chromeOptions': opts}}}
            self.sid = self._call('POST', '/session', caps)['sessionId']
        except BaseException:
            self.close(); raise

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={'Content-Type': 'application/json'})
        try:
            with self.http.open(req, timeout=120) as r: return json.load(r)['value']
        except urllib.error.HTTPError as e: raise RuntimeError(f'WebDriver {method} {path}: {e.read().decode()[:2000]}') from None

    def get(self, url): self._call('POST', f'/session/{self.sid}/url', {'url': url})
    def js(self, script): return self._call('POST', f'/session/{self.sid}/execute/sync', {'script': script, 'args': []})
    def screenshot(self, path): Path(path).write_bytes(base64.b64decode(self._call('GET', f'/session/{self.sid}/screenshot')))

    def close(self):
        if self.sid:
            try: self._call('DELETE', f'/session/{self.sid}')
            except (OSError, RuntimeError): pass
        self.driver.terminate()
        try: self.driver.wait(10)
        except subprocess.TimeoutExpired: self.driver.kill(); self.driver.wait()
