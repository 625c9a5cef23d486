"""The documentation site: `nbs/build_docs.py` fails on broken docs, pages show what a notebook shows (a fit's table,
no progress-bar lines, no warnings), the search index and the API reference pages are complete, and built pages
(search included) work in headless Chromium.

By default the site fixture builds a small subset (the front page and one API page) with `--execute`. CI builds the
whole site once and points the tests at it with `FASTPRUNE_DOCS=_docs` (a path relative to the repository root).
`FASTPRUNE_DOCS_API_NB` picks the API notebook (default `22_schedules.ipynb`, cheap to run; its page must show a plot).
The browser checks drive Chromium through chromedriver's W3C WebDriver HTTP API with the standard library only; they
are skipped, with the reason, where the Debian packages `chromium` and `chromium-driver` are not installed.
"""
import base64, json, os, re, shutil, socket, subprocess, sys, time, urllib.request
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
    "Write a notebook from (cell_type, source) pairs, or (cell_type, source, stored outputs) triples"
    def cell(i, t, s, outputs=()):
        return dict(cell_type=t, id=f'c{i}', metadata={}, source=s,
                    **(dict(outputs=list(outputs), execution_count=None) if t == 'code' else {}))
    nb = dict(nbformat=4, nbformat_minor=5, metadata=dict(kernelspec=dict(name='python3', display_name='python3', language='python')),
              cells=[cell(i, *c) for i, c in enumerate(cells)])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))

def notebooks_dir(tmp_path):
    "An empty notebooks folder for the builder, with a sidebar listing every notebook in it"
    nbs = tmp_path/'nbs'
    nbs.mkdir()
    (nbs/'_quarto.yml').write_text('website:\n  sidebar:\n    contents:\n      - section: Pages\n        contents: "*.ipynb"\n')
    return nbs

def test_build_fails_and_lists_every_problem(tmp_path):
    nbs = notebooks_dir(tmp_path)
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

def test_quick_build_skips_test_cells_that_need_unrun_names(tmp_path):
    "Without --execute a test cell mixing imports with code that uses names from earlier test cells is not run (nbdev would)"
    nbs = notebooks_dir(tmp_path)
    write_nb(nbs/'index.ipynb', [('markdown', '# Home\n> The front page.')])
    write_nb(nbs/'quick.ipynb', [('markdown', '# Quick\n> Stored outputs only.'),
                                 ('code', '#| exec_doc\ndef double(x):\n    "Twice `x`."\n    return 2 * x'), ('code', 'show_doc(double)'),
                                 ('code', 'ps = [0, 1]'),
                                 ('code', 'import math\nprint(math.prod(ps))', [dict(name='stdout', output_type='stream', text=['0\n'])]),
                                 ('code', 'for _ in ps:\n    import math\nprint(ps)')])
    out = tmp_path/'_docs'
    r = run_builder('--nbs', str(nbs), '--out', str(out), '--n-workers', '1')
    assert r.returncode == 0, r.stdout + r.stderr
    page = soup(out/'quick.html')
    assert 'Twice' in page.get_text() and '0' in output_text(page)  # the show_doc ran, the stored output is shown

BAR_LINE = re.compile(r'\|[█X-]{3,}\|\s*(\d+(\.\d+)?% )?\[\d+/')  # a fastprogress console bar, as a captured run prints it
WARNING = re.compile(r'\w*Warning: |site-packages|\.venv')

def output_text(page):
    "Text of every output area of a built page"
    return '\n'.join(o.get_text() for o in page.select('main .output_area'))

def test_pages_show_fit_tables_without_bars_or_warnings(site):
    "Every built page (the whole site under FASTPRUNE_DOCS): no progress-bar lines, no warnings, no build paths"
    pages = sorted(site.glob('**/*.html'))
    assert pages
    for f in pages:
        text = output_text(soup(f))
        assert not BAR_LINE.search(text), f'{f.name} shows progress-bar lines: {BAR_LINE.search(text).group()!r}'
        assert not WARNING.search(text), f'{f.name} shows a warning or a build path: {text[max(0, WARNING.search(text).start() - 200):][:400]!r}'
    front = soup(site/'index.html')
    if front.select('main .output_area'):  # an executed build (a quick build shows the stored outputs, maybe none)
        tables = front.select('main table.fastprogress')
        assert tables and all('train_loss' in t.get_text() for t in tables), 'the quickstart fits show their results tables'

# a console run's stored outputs: the bar rewrites its line with carriage returns, a warning names the machine's paths
CONSOLE_RUN = ('█\repoch     train_loss  valid_loss  time    \n█\r\rEpoch 1/1 : |----------| 0.00% [0/9 00:00<?]'
               '\rEpoch 1/1 : |█████-----| 50.00% [4/9 00:01<00:01 2.31]\r                    \r'
               '0         2.301234    2.201234    00:02   \n')
STORED_WARNING = ('/home/builder/.venv/lib/python3.11/site-packages/fastai/learner.py:456: UserWarning: load_learner` uses '
                  "Python's insecure pickle module\nIf you only need the weights, use `Learner.load`.\n  warn(\"load_learner\")\n")

def test_executed_page_has_fit_table_no_bar_lines_no_warnings(tmp_path):
    "A fit shows its final table as a notebook does; bars and warnings (fresh or stored) stay off the page, errors do not"
    nbs = notebooks_dir(tmp_path)
    write_nb(nbs/'index.ipynb', [('markdown', '# Home')])
    stream = lambda name, text: dict(output_type='stream', name=name, text=text)
    write_nb(nbs/'train.ipynb', [
        ('markdown', '# Train\n> A fit.'),
        ('code', 'import sys, warnings\nfrom fastai.test_utils import synth_learner\nfrom fastai.callback.progress import *\n'
                 'learn = synth_learner(n_trn=2)\nlearn.fit(2)'),
        ('code', "from fastprogress import progress_bar\nfor _ in progress_bar(range(30)): pass\n"
                 "warnings.warn('deprecated, said /build/machine/lib.py')\nprint('a real problem, kept', file=sys.stderr)"),
        ('code', '#| eval: false\nlearn.fit(1)', [stream('stdout', CONSOLE_RUN), stream('stderr', STORED_WARNING)]),
    ])
    out = tmp_path/'_docs'
    r = run_builder('--nbs', str(nbs), '--out', str(out), '--execute', '--only', 'train.ipynb', '--n-workers', '1')
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'warning in train.ipynb (not on the page): UserWarning: deprecated' in r.stderr, 'warnings go to the build log'
    page = soup(out/'train.html')
    text = output_text(page)
    assert not BAR_LINE.search(text) and '█' not in text, text
    assert 'Warning' not in text and '/build/machine' not in text and 'site-packages' not in text, text
    # the fresh fit: one HTML table (header and a row per epoch), as fastprogress's notebook bar leaves it
    (table,) = page.select('main table.fastprogress')
    rows = [[c.get_text() for c in tr.find_all(['th', 'td'])] for tr in table.find_all('tr')]
    assert rows[0][:3] == ['epoch', 'train_loss', 'valid_loss'] and [r[0] for r in rows[1:]] == ['0', '1'], rows
    # stored console output: what the terminal showed (the table's lines), the real stderr line kept
    pres = [p.get_text() for p in page.select('main .output_area pre')]
    assert any(t.startswith('epoch     train_loss') and '0         2.301234' in t for t in pres), pres
    assert [p.get_text().strip() for p in page.select('main .output_stderr pre')] == ['a real problem, kept']

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

def test_search_index_holds_the_pages_words(site):
    "search.json (and search_index.js, the same list for pages opened from disk) indexes every page by section"
    entries = json.loads((site/'search.json').read_text())
    js = (site/'search_index.js').read_text()
    assert js.startswith('window.fastpruneSearchIndex = ') and json.loads(js.split(' = ', 1)[1].rstrip().rstrip(';')) == entries
    assert (site/'search.js').is_file()
    assert all(set(e) == {'url', 'title', 'section', 'text'} for e in entries)
    pages = {e['url'].split('#')[0] for e in entries}
    assert {'index.html', page_of(API_NB)} <= pages and all((site/p).is_file() for p in pages)
    for e in entries:  # every section's anchor exists on its page
        if '#' in e['url']:
            path, frag = e['url'].split('#', 1)
            assert soup(site/path).find(id=frag) is not None, e['url']
    # words of the front page's prose, and the API page's show_doc entries, each under its own anchor
    front = ' '.join(e['text'] for e in entries if e['url'].split('#')[0] == 'index.html')
    prose = soup(site/'index.html').select_one('main .text_cell_render p').get_text().split()
    assert all(w in front for w in prose[:8]), prose[:8]
    api = soup(site/page_of(API_NB))
    for h in api.select('.celltag_showdoc h3[id]'):
        e = next((e for e in entries if e['url'] == f'{page_of(API_NB)}#{h["id"]}'), None)
        assert e is not None and e['section'] == h.get_text().replace('¶', '').strip() and e['text'], h
    # outputs other than show_doc's (numbers, warnings of a run) are not indexed
    assert not any(re.search(r'\w+Warning: ', e['text']) for e in entries)

def test_api_reference_pages(site):
    "A page per module (its public names, signatures and docstrings) cross-linked with the notebook pages, and an index"
    from nbdev.config import get_config
    sys.path.insert(0, str(BUILDER.parent))
    import build_docs
    lib = get_config(ROOT).lib_path.name
    mod = build_docs.default_exp(ROOT/'nbs'/API_NB, lib)
    ref = build_docs.api_page_of(mod)
    index, api, nb_page = soup(site/'api'/'index.html'), soup(site/ref), soup(site/page_of(API_NB))
    assert index.select_one(f'main a[href="{Path(ref).name}"]'), 'the API index links the module page'
    assert any(a.get_text() == 'Overview' for a in api.select('nav.sidebar a')) and api.select_one('nav.sidebar a.active')['href'] == Path(ref).name
    # the notebook page points to its module's reference, which links back to each show_doc entry
    assert nb_page.select_one(f'.page-api a[href="{ref}"]'), 'the notebook page links its API reference page'
    names, _ = build_docs.module_all(get_config(ROOT).lib_path, mod)
    entries = {h.get_text().replace('¶', '').strip(): h for h in api.select('main .api-entry h2[id]')}
    assert list(entries) == names, (list(entries), names)
    for h in nb_page.select('.celltag_showdoc h3[id]'):
        name = h.get_text().replace('¶', '').strip()
        if name not in entries: continue  # a method: under its class
        entry = entries[name].find_parent('section')
        assert entry.select_one(f'a[href="../{page_of(API_NB)}#{h["id"]}"]'), f'{name}: links its show_doc entry'
        assert entry.select_one('pre'), f'{name}: shows its signature'

SEARCH_STATE = """
const list = document.getElementById('search-results');
return {hidden: list.hidden, active: document.activeElement && document.activeElement.id,
        results: [...list.querySelectorAll('a')].map(a => ({href: a.getAttribute('href'), where: a.querySelector('.search-where').textContent})),
        none: [...list.querySelectorAll('.search-none')].map(li => li.textContent)};
"""

@needs_chromium
def test_search_in_chromium(site, browser, tmp_path):
    "Typing in the header's search box lists matching sections; Enter opens the first; `/` focuses the box"
    api = soup(site/page_of(API_NB))
    symbol = api.select_one('.celltag_showdoc h3[id]')
    name, anchor = symbol.get_text().replace('¶', '').strip(), symbol['id']
    browser.get((site/'index.html').resolve().as_uri())
    box = browser.find('#search-input')
    browser.keys(box, name)
    s = browser.wait(SEARCH_STATE, lambda s: s['results'] or s['none'])
    browser.screenshot(tmp_path/'search.png')
    assert not s['hidden'] and s['results'], s
    target = f'{page_of(API_NB)}#{anchor}'
    assert any(r['href'].endswith(target) for r in s['results'][:3]), f'{name!r} lists its API entry first: {s}'
    # every result is a page of the site, offline
    assert all(r['href'].startswith('file://') for r in s['results']), s
    # Enter opens the best result
    browser.keys(box, '\ue007')
    url = browser.wait('return location.href', lambda u: '#' in u)
    assert url.endswith(s['results'][0]['href'].split('/')[-1]), (url, s['results'][0])
    # a word on no page says so; "/" focuses the box from anywhere on the page
    browser.keys(browser.find('body'), '/')
    assert browser.js(SEARCH_STATE)['active'] == 'search-input'
    browser.keys(browser.find('#search-input'), 'qzxjvwq')
    s = browser.wait(SEARCH_STATE, lambda s: s['none'])
    assert not s['results'] and 'No results' in s['none'][0], s

ELEMENT = 'element-6066-11e4-a52e-4f735466cecf'  # the W3C WebDriver key of an element reference

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
    def find(self, css): return self._call('POST', f'/session/{self.sid}/element', {'using': 'css selector', 'value': css})[ELEMENT]
    def keys(self, element, text): self._call('POST', f'/session/{self.sid}/element/{element}/value', {'text': text})

    def wait(self, script, until, timeout=30):
        "Result of `script` once `until(result)` holds (the last result when `timeout` seconds pass)"
        deadline = time.monotonic() + timeout
        while True:
            res = self.js(script)
            if until(res) or time.monotonic() > deadline: return res
            time.sleep(0.1)

    def screenshot(self, path): Path(path).write_bytes(base64.b64decode(self._call('GET', f'/session/{self.sid}/screenshot')))

    def close(self):
        if self.sid:
            try: self._call('DELETE', f'/session/{self.sid}')
            except (OSError, RuntimeError): pass
        self.driver.terminate()
        try: self.driver.wait(10)
        except subprocess.TimeoutExpired: self.driver.kill(); self.driver.wait()
