#!/usr/bin/env python
"""Build fastprune's documentation site offline, without Quarto.

    python nbs/build_docs.py [--execute] [--slow] [--out _docs] [--only GLOB ...] [--n-workers N]
    python nbs/build_docs.py --readme     # README.md from nbs/index.ipynb (what `nbdev-readme` does with Quarto)

Every notebook under nbs/ (recursively; names starting with `_` or `.` are skipped) goes through nbdev's own docs
processors (`nbdev.processors.FilterDefaults`, the ones `nbdev-proc-nbs` / `nbdev-docs` use: frontmatter, `#| hide`,
`#| export` cells removed, `show_doc` cells rendered as markdown...), is rendered with nbconvert's `basic` template and
written to `<out>/<page>.html` (`00_data.ipynb` -> `data.html`, the file names nbdev's doc links use) inside one page
layout whose sidebar comes from `website.sidebar` in nbs/_quarto.yml, the file `nbdev-docs` uses too.

Without `--execute` the stored outputs are used and only what `show_doc` needs is run, as `nbdev-docs` does, except
test cells that mix imports with other code (nbdev runs those, but their names come from test cells that did not run). With
`--execute` every cell `nbdev-test` would run is run (in the notebook's folder, with nbdev's `cell_timeout`) and its
fresh outputs, plots included (PNG), go in the page; skipped cells (`#| slow` unless `--slow`, `#| eval: false`) keep
their stored outputs.

Pages show what a finished notebook shows. In an executed build fastprogress's bars draw nothing and each fit's table
is shown once, as the HTML table fastprogress leaves in a notebook; warnings go to the build's log (one line each,
naming the notebook), not into the page. In every page, stored outputs included, stream outputs are shown as a
terminal shows them (carriage returns applied), without fastprogress console bars and without warnings; any other
stderr text, and errors, stay.

The site also has a full-text search (`search.json`, the same list as `search_index.js` for pages opened from disk,
and `search.js` from nbs/docs_assets/: a box in the header, no network), one entry per section of each page; and an
API reference: a page per module the built notebooks export to (`api/<module>.html`: every name of its `__all__`
with its `show_doc` signature and docstring, linked to its entry in the notebook pages, which link back) and an
index of the modules (`api/index.html`), listed in the sidebar under "API reference".

The build fails (exit 1, every problem listed) when a notebook raises; when a function or class in the `__all__` of
a module a notebook exports to has no `show_doc` call in the notebooks exporting to that module (another public name,
such as a table of criteria, may instead be named as inline code in their prose: `show_doc` of a dict shows dict's
docstring); when a sidebar entry names no notebook (full builds); or when a local link (`href`/`src`, `.ipynb` links
included) points to a page, file or anchor the site does not have. Inline code naming a documented symbol
(`` `digits_dls` ``) links to its `show_doc` entry.
"""
import argparse, ast, copy, fnmatch, json, os, posixpath, re, shutil, sys, textwrap, time, traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

import yaml

NBS = Path(__file__).resolve().parent
ROOT = NBS.parent
_MARKER = '.fastprune-docs'  # marks an output folder this script made, so only such a folder is ever wiped

class DocsError(Exception): "A problem that makes the docs build fail"

# --------------------------------------------------------------------------------------------------- notebooks

def find_notebooks(nbs):
    "Notebook paths under `nbs` relative to it, sorted, skipping files and folders whose name starts with `_` or `.`"
    return sorted(p.relative_to(nbs).as_posix() for p in nbs.rglob('*.ipynb')
                  if not any(part[0] in '_.' for part in p.relative_to(nbs).parts))

def page_of(rel):
    "Site path of notebook `rel`: nbdev's `nbpath2html` (numeric prefix dropped), as doc links expect"
    from nbdev.config import nbpath2html
    return nbpath2html(Path(rel)).as_posix()

def _is_glob(s): return any(c in s for c in '*?[')

def load_sidebar(nbs, notebooks):
    "[(section title, [notebook rel paths])] from `website.sidebar.contents` of `nbs/_quarto.yml`, globs expanded"
    qy = nbs/'_quarto.yml'
    if not qy.exists(): raise DocsError(f'{qy} not found: it holds the sidebar both Quarto and this script use')
    cfg = yaml.safe_load(qy.read_text()) or {}
    contents = ((cfg.get('website') or {}).get('sidebar') or {}).get('contents')
    if not contents: raise DocsError(f'{qy}: no website.sidebar.contents')
    missing, sections = [], []
    def expand(entries):
        res = []
        for e in [entries] if isinstance(entries, str) else entries:
            if not isinstance(e, str): raise DocsError(f'{qy}: sidebar entry {e!r}: expected a notebook path or glob')
            if _is_glob(e): res += [nb for nb in notebooks if fnmatch.fnmatch(nb, e) and nb.count('/') == e.count('/')]
            elif e in notebooks: res.append(e)
            else: missing.append(e)
        return res
    for item in contents:
        if isinstance(item, dict) and 'section' in item: sections.append((item['section'], expand(item.get('contents', []))))
        elif isinstance(item, str): sections.append((None, expand(item)))
        else: raise DocsError(f'{qy}: sidebar item {item!r}: expected a `section:` mapping or a notebook path')
    return sections, missing

def _cells_code(nb_path):
    "Sources of the code cells of notebook `nb_path`, with their nbdev directives"
    from fastcore.nbio import read_nb
    return [c for c in read_nb(nb_path).cells if c.cell_type == 'code']

def exported_modules(nb_path, lib_name):
    "Modules notebook `nb_path` exports to: its `#| default_exp` and any `#| export <module>` cell targets"
    mods = set()
    for c in _cells_code(nb_path):
        d = c.directives
        mods.update(d[k].split()[0] for k in ('default_exp', 'export', 'exports', 'exporti') if d.get(k, '').strip())
    return {m if m.startswith(lib_name + '.') else f'{lib_name}.{m}' for m in mods}

def default_exp(nb_path, lib_name):
    "The module notebook `nb_path` names in `#| default_exp`, or None"
    for c in _cells_code(nb_path):
        if (m := c.directives.get('default_exp', '').strip()):
            m = m.split()[0]
            return m if m.startswith(lib_name + '.') else f'{lib_name}.{m}'

def _strip_magics(src): return '\n'.join('' if l.lstrip()[:1] in ('%', '!') else l for l in src.splitlines())

def show_doc_names(nb_path):
    "Names passed to `show_doc(...)` (its first argument, or `name=`) in the code cells of notebook `nb_path`"
    res = set()
    for c in _cells_code(nb_path):
        try: tree = ast.parse(_strip_magics(c.source))
        except SyntaxError: continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == 'show_doc':
                if node.args: res.add(ast.unparse(node.args[0]))
                res.update(k.value.value for k in node.keywords if k.arg == 'name' and isinstance(k.value, ast.Constant))
    return res

def _module_tree(lib_path, module):
    rel = Path(*module.split('.')[1:])
    f = next((p for p in (lib_path/rel.with_suffix('.py'), lib_path/rel/'__init__.py') if p.exists()), None)
    if f is None: raise DocsError(f'module {module} not found under {lib_path}: run `nbdev-export` first')
    return ast.parse(f.read_text())

def module_all(lib_path, module):
    "(`__all__` of `module`'s source file under `lib_path`, the names in it that a top-level `def` or `class` defines)"
    body, names = _module_tree(lib_path, module).body, []
    for node in body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '__all__' for t in node.targets):
            names = list(ast.literal_eval(node.value))
    defs = {n.name for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return names, defs & set(names)

_re_code_name = re.compile(r'`([A-Za-z_][\w.]*?)(?:\(\))?`')

def md_mentions(nb_path):
    "Names written as inline code in the markdown cells of notebook `nb_path`"
    from fastcore.nbio import read_nb
    return {m for c in read_nb(nb_path).cells if c.cell_type == 'markdown' for m in _re_code_name.findall(c.source)}

def undocumented(nbs, notebooks, lib_path, lib_name):
    """{notebook: [public names of the modules it exports to that are not documented]}. A function or class in
    `__all__` needs a `show_doc` call; any other public name (a table, a constant, an instance) needs a `show_doc` call
    or a mention as inline code in the prose, since `show_doc` of a dict shows `dict`'s docstring. Any notebook
    exporting to the module may hold them."""
    all_nbs = find_notebooks(nbs)
    exports = {nb: exported_modules(nbs/nb, lib_name) for nb in all_nbs}
    shown = {nb: show_doc_names(nbs/nb) for nb in all_nbs}
    res = {}
    for nb in notebooks:
        for mod in sorted(exports[nb]):
            writers = [o for o in all_nbs if mod in exports[o]]
            names, defs = module_all(lib_path, mod)
            documented = set().union(*(shown[o] for o in writers))
            mentioned = set().union(*(md_mentions(nbs/o) for o in writers)) if set(names) - defs else set()
            ok = lambda s: s in documented or f'{mod}.{s}' in documented or (s not in defs and s in mentioned)
            miss = [s for s in names if not ok(s)]
            if miss: res.setdefault(nb, []).extend(f'{mod}.{s}' for s in miss)
    return res

# ----------------------------------------------------------------------------------- processing and rendering

class _ExecAll:
    "Processor running what `nbdev-test` runs, in one shell, so pages show fresh outputs; skipped cells keep theirs"
    skip_flags, force_flags = (), ()
    def __init__(self, nb): self.nb = nb
    def __call__(self, cell): pass
    def begin(self):
        from execnb.shell import CaptureShell
        from nbdev.config import get_config
        from nbdev.test import _skip_cell
        cfg = get_config()
        k = CaptureShell(self.nb.path_, profile=bool(cfg.exec_profile))
        k.run('from nbdev.showdoc import show_doc')  # as `exec_show_docs`: the show_doc cells nbdev adds need it
        _quiet_kernel(getattr(self.nb, 'path_', None))  # fit tables as a notebook shows them; warnings to the build log
        skip, ran = _skip_cell(self.nb, self.skip_flags, self.force_flags), []
        def _pre(cell):
            if not (skipped := skip(cell)): ran.append(cell)
            return skipped
        try: k.run_all(self.nb, exc_stop=True, preproc=_pre, cell_timeout=cfg.cell_timeout or None)
        except BaseException as e:
            tb = e.__traceback__  # keep the notebook's frames, not this script's or execnb's
            while tb and not tb.tb_frame.f_code.co_filename.startswith('<'): tb = tb.tb_next
            raise DocsError(f'{type(e).__name__} in this cell:\n' + textwrap.indent(ran[-1].source if ran else '', '    ') +
                            '\n' + ''.join(traceback.format_exception(type(e), e, tb or e.__traceback__))) from None
        finally: k.close()
        for c in self.nb.cells:  # fresh outputs come as lists of lines; nbdev's processors expect what `read_nb` gives
            for o in c.get('outputs', []):
                if isinstance(o.get('text'), list): o['text'] = ''.join(o['text'])
                for mime, v in (o.get('data') or {}).items():
                    if isinstance(v, list): o['data'][mime] = ''.join(v)

def _fit_table(rows):
    "The HTML table fastprogress's notebook bar ends a fit with (`text2html_table`'s markup)"
    head = ''.join(f'<th>{escape(c)}</th>' for c in rows[0])
    body = ''.join('<tr>' + ''.join(f'<td>{escape(c)}</td>' for c in r) + '</tr>' for r in rows[1:])
    return f'<table class="fastprogress"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

def _docs_bars():
    """fastprogress bar classes for executed pages. A notebook's live bar is one display updated in place: what stays
    once a fit is done is its results table (fastai's inner bars do not `leave`). A captured run keeps every update
    (the console bar rewrites its line with `\\r`, ~20 updates an epoch), so these draw nothing and show the fit's table,
    once, as the notebook's final HTML table (`table.fastprogress`)."""
    import fastprogress.fastprogress as fp
    from IPython.display import display, HTML
    class DocsProgressBar(fp.ProgressBar):
        "A bar that draws nothing (a finished notebook shows none either: fastai's bars do not `leave`)"
    class DocsMasterBar(fp.MasterBar):
        "Collects what fastai writes (the table, lines of text) and shows it once, as HTML, when the fit ends"
        pcls = DocsProgressBar
        def __init__(self, gen, total=None, hide_graph=False, order=None, clean_on_interrupt=False, total_time=False,
                     names=('train', 'valid'), hdrs=None):
            super().__init__(gen, DocsProgressBar, total)
            self.rows, self.parts, self.total_time, self.shown = [], [], total_time, False
            if hdrs is not None: self.write(hdrs, table=True)
        def write(self, line, table=False):
            if not table: self.parts.append(str(line)); return
            if not self.rows: self.parts.append(None)  # where the table goes
            self.rows.append([str(o) for o in line])
        def on_iter_end(self): self._show()
        def on_interrupt(self): self._show()
        def _show(self):
            if self.shown or not self.parts: return
            self.shown = True
            html = ''.join(_fit_table(self.rows) if p is None else f'<p>{escape(p)}</p>' for p in self.parts)
            if self.total_time and getattr(self.main_bar, 'start_t', None):
                html = f'<p>Total time: {fp.format_time(time.time() - self.main_bar.start_t)}</p>' + html
            display(HTML(f'<div>{html}</div>'))
    return DocsMasterBar, DocsProgressBar

def _quiet_kernel(nb_path=None):
    """Set up this process (the in-process kernel of `_ExecAll`) so pages get what a notebook ends with: fastprogress
    bars replaced by `_docs_bars` (in fastprogress and in any module that already imported its bars), and warnings
    written to the build's log (the worker's real stderr), one line each, instead of into the page. Filters are left
    as they are, so `warnings.catch_warnings(record=True)` in a notebook still sees every warning."""
    import warnings
    name = Path(nb_path).name if nb_path else 'notebook'
    def _log(message, category, filename, lineno, file=None, line=None):
        msg = str(message).strip().splitlines() or ['']
        print(f'  warning in {name} (not on the page): {category.__name__}: {msg[0]} [{filename}:{lineno}]',
              file=sys.__stderr__, flush=True)
    warnings.showwarning = _log
    try: import fastprogress, fastprogress.fastprogress as fp
    except ImportError: return
    mb, pb = _docs_bars()
    old = {fp.NBMasterBar: mb, fp.ConsoleMasterBar: mb, fp.NBProgressBar: pb, fp.ConsoleProgressBar: pb}
    for mod in list(sys.modules.values()):
        ns = getattr(mod, '__dict__', None) or {}  # not getattr: a module's lazy `__getattr__` could import things
        for attr in ('master_bar', 'progress_bar'):
            v = ns.get(attr)
            if isinstance(v, type) and v in old: ns[attr] = old[v]
    fp.force_console_behavior = lambda: (mb, pb)

# stream outputs: what a notebook front end shows of them, without warnings and progress bars
_re_warning = re.compile(r'^\S.*?:\d+: \w*Warning: ')  # warnings.formatwarning: `file:line: Category: message`
_re_log_warning = re.compile(r'^WARNING:[\w.]*:')  # logging's default format
_re_bar = re.compile(r'^.*\|[█X-]*\|\s*(\d+(\.\d+)?% )?\[\d+/\S+( [^\]]*)?\]\s*$')  # a fastprogress console bar
_re_error = re.compile(r'^(Traceback|During handling|\w+(Error|Exception)\b)')
_re_fill = re.compile(r'^[█X]\s*$')  # what fastprogress's console bar prints to test its fill character

def _terminal_lines(text):
    "`text` as a terminal (and a notebook's output area) shows it: each line is what follows its last carriage return"
    res = []
    for line in text.split('\n'):
        segs = [s for s in line.split('\r') if s.strip()]
        res.append(segs[-1] if segs else '' if '\r' in line else line)
    return res

def _strip_warnings(lines):
    "`lines` of stderr without Python warnings (header, message lines, the indented source line) or logging warnings"
    res, in_warning = [], False
    for line in lines:
        if _re_warning.match(line) or _re_log_warning.match(line): in_warning = True; continue
        if in_warning:
            if line.startswith('  '): in_warning = False; continue  # the source line that ends formatwarning's text
            if line.strip() and not _re_error.match(line): continue  # the message's next lines
            in_warning = False  # a blank line or an error: the warning is over
        res.append(line)
    return res

def clean_outputs(cells):
    """Stream outputs of `cells` as a notebook shows them, minus what pages must not show: carriage returns applied,
    fastprogress console bars (stored outputs of runs without `_quiet_kernel`) and warnings dropped. Errors and any
    other stderr text stay. A stream left empty is removed."""
    for c in cells:
        outs = c.get('outputs')
        if not outs: continue
        keep = []
        for o in outs:
            if o.get('output_type') == 'stream':
                text = o.get('text', '')
                lines = _terminal_lines(''.join(text) if isinstance(text, list) else text)
                lines = [l for l in lines if not (_re_bar.match(l) or _re_fill.match(l))]
                if o.get('name') == 'stderr': lines = _strip_warnings(lines)
                text = re.sub(r'\n{3,}', '\n\n', '\n'.join(lines))
                if not text.strip(): continue
                o['text'] = text.lstrip('\n')
            keep.append(o)
        c['outputs'] = keep

def _mixes_imports(cell):
    "A code cell, not exported, with imports (at any depth) and other statements (nbdev's `exec_show_docs` runs it)."
    try: body = ast.parse(cell.source).body
    except SyntaxError: return False
    top = [isinstance(t, (ast.Import, ast.ImportFrom)) for t in body]
    nested = any(isinstance(n, (ast.Import, ast.ImportFrom)) for t in body for n in ast.walk(t))
    return not cell.source.lstrip().startswith('#| export') and nested and not all(top)

def _exec_docs():
    """nbdev's `exec_show_docs`, except that a test cell mixing imports with other code is not run: without `--execute`
    the test cells before it did not run either, so the names it uses do not exist (its stored outputs are shown)."""
    from nbdev.processors import exec_show_docs
    class exec_docs(exec_show_docs):
        def __call__(self, cell):
            if not _mixes_imports(cell): super().__call__(cell)
    return exec_docs

def _processors(execute, skip_flags, force_flags):
    "nbdev's docs processors; with `execute`, running every cell replaces `exec_show_docs`. Symbol links come later"
    from nbdev.processors import FilterDefaults, exec_show_docs, add_links, insert_warning
    procs = [p for p in FilterDefaults().procs() if p is not add_links]
    if not execute: return [_exec_docs() if p is exec_show_docs else p for p in procs]
    procs.remove(exec_show_docs)
    procs.insert(procs.index(insert_warning) + 1, type('exec_all', (_ExecAll,), dict(skip_flags=skip_flags, force_flags=force_flags)))
    return procs

_re_qdir = re.compile(r'^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_re_showdoc = re.compile(r'^show_doc\b', re.MULTILINE)

def _quarto_tags(cell):
    "Turn the Quarto `#|` options nbdev leaves on a processed cell into nbconvert remove-tags, and drop those lines"
    lines, tags = cell.source.splitlines(), set()
    while lines and (m := _re_qdir.match(lines[0])):
        key, val = m.group(1), m.group(2).strip('"\'').lower()
        if val == 'false' and key in ('echo', 'output', 'include'): tags.add(f'{key}-false')
        lines.pop(0)
    cell.source = '\n'.join(lines)
    if _re_showdoc.search(cell.source): tags.add('showdoc')
    cell.metadata['tags'] = sorted(set(cell.metadata.get('tags', [])) | tags)

def render_notebook(job):
    "Process (and with `execute` run) one notebook, render it to an HTML fragment: {rel,title,description,lead,body} or {rel,error}"
    nbs, rel, execute, skip_flags, force_flags = job
    os.environ['IN_TEST'] = '1'  # what nbdev sets while testing and processing docs
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    path = nbs/rel
    os.chdir(path.parent)  # as nbdev-test: cells run in the notebook's folder
    try:
        import nbformat
        from fastcore.nbio import read_nb, nb2dict
        from nbdev.process import NBProcessor
        from nbconvert import HTMLExporter
        from nbconvert.filters.markdown import markdown2html
        from traitlets.config import Config
        nb = read_nb(path)
        NBProcessor(nb=nb, procs=_processors(execute, skip_flags, force_flags), rm_directives='quarto').process()
        fm = dict(getattr(nb, 'frontmatter_', {}) or {})
        nb.cells = [c for c in nb.cells if not (c.cell_type == 'raw' and c.source.lstrip().startswith('---'))]
        for c in nb.cells:
            if c.cell_type == 'code': _quarto_tags(c)
        d = nb2dict(nb)
        clean_outputs(d['cells'])
        keep = {'id', 'cell_type', 'metadata', 'source', 'outputs', 'execution_count', 'attachments'}
        d['cells'] = [{k: v for k, v in c.items() if k in keep} for c in d['cells']]
        for c in d['cells']: c['metadata'].pop('execution', None)  # execnb's timings are not valid nbformat
        conf = Config()
        conf.HTMLExporter.update(template_name='basic', exclude_input_prompt=True, exclude_output_prompt=True)
        conf.TagRemovePreprocessor.update(enabled=True, remove_cell_tags={'include-false'},
                                          remove_input_tags={'echo-false'}, remove_all_outputs_tags={'output-false'})
        body, _ = HTMLExporter(config=conf).from_notebook_node(nbformat.reads(json.dumps(d), as_version=4))
        desc = str(fm.get('description') or '')
        return dict(rel=rel, title=str(fm.get('title') or Path(rel).stem), description=desc,
                    lead=markdown2html(desc) if desc else '', body=body)
    except BaseException as e:
        msg = str(e) if isinstance(e, DocsError) else traceback.format_exc()
        return dict(rel=rel, error=msg)

def readme_text(nbs=NBS):
    "README.md text from the front page notebook: nbdev's docs processing (hidden cells and directives out), as Markdown"
    import nbformat
    from fastcore.nbio import read_nb, nb2dict
    from nbdev.process import NBProcessor
    from nbconvert import MarkdownExporter
    nb = read_nb(Path(nbs)/'index.ipynb')
    NBProcessor(nb=nb, procs=_readme_procs(), rm_directives='quarto').process()
    nb.cells = [c for c in nb.cells if not (c.cell_type == 'raw' and c.source.lstrip().startswith('---'))]
    for c in nb.cells:
        if c.cell_type == 'code': _quarto_tags(c)
    keep = {'id', 'cell_type', 'metadata', 'source', 'outputs', 'execution_count'}
    fm = dict(getattr(nb, 'frontmatter_', {}) or {})
    d = nb2dict(nb)
    d['metadata']['language_info'] = {'name': 'python'}
    d['cells'] = [{k: v for k, v in c.items() if k in keep} for c in d['cells'] if 'include-false' not in c['metadata'].get('tags', [])]
    body, _ = MarkdownExporter().from_notebook_node(nbformat.reads(json.dumps(d), as_version=4))
    head = f"# {fm.get('title', 'fastprune')}\n\n> {fm.get('description', '')}\n\n"
    return head + re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'

def _readme_procs():
    "nbdev's docs processors without running any code: the README shows the front page's stored outputs"
    from nbdev.processors import FilterDefaults, exec_show_docs, add_links
    return [p for p in FilterDefaults().procs() if p not in (exec_show_docs, add_links)]

# ------------------------------------------------------------------------------------------- site assembly

def _slug(text):
    "Pandoc's (so Quarto's) automatic heading identifier for `text`"
    s = re.sub(r'[^\w\s.-]', '', text.strip().lower())
    s = re.sub(r'^[\W\d_]+', '', re.sub(r'\s+', '-', s))
    return s or 'section'

def _rel(target, page):
    "URL of site path `target` relative to the page at site path `page`"
    return posixpath.relpath(target, posixpath.dirname(page) or '.')

def _fix_headings(soup):
    "Give headings Quarto's ids (unique per page) and a matching anchor link; returns {symbol: id} for `show_doc` headings"
    seen, symbols = {}, {}
    for h in soup.find_all(re.compile('^h[1-6]$')):
        for a in h.find_all('a', class_='anchor-link'): a.decompose()
        text = h.get_text().strip()
        base = _slug(text); hid = base
        n = seen.get(base, 0)
        if n: hid = f'{base}-{n}'
        seen[base] = n + 1
        h['id'] = hid
        link = soup.new_tag('a', href=f'#{hid}', attrs={'class': 'anchor-link', 'aria-hidden': 'true'}); link.string = '¶'
        h.append(link)
        if h.find_parent(class_='celltag_showdoc') is not None and h.name == 'h3': symbols[text] = hid
    return symbols

def _rewrite_nb_links(soup, page, rel):
    "Point local links to notebooks (`00_data.ipynb#x`, `../tutorials/t.ipynb`) at their pages, as Quarto does"
    for a in soup.find_all('a', href=True):
        u = urlsplit(a['href'])
        if u.scheme or u.netloc or not u.path.endswith('.ipynb'): continue
        nb = posixpath.normpath(posixpath.join(posixpath.dirname(rel), u.path))
        a['href'] = _rel(page_of(nb), page) + (f'#{u.fragment}' if u.fragment else '')

_re_sym = re.compile(r'^([A-Za-z_][\w.]*?)(\(\))?$')

def _link_symbols(soup, page, symbols, lookup):
    "Link inline code naming a documented symbol to its `show_doc` entry (else to another library's docs, as nbdev's `add_links`)"
    for code in soup.find_all('code'):
        if code.find_parent(['a', 'pre', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6']) is not None: continue
        m = _re_sym.match(code.get_text())
        if not m: continue
        name = m.group(1)
        if name in symbols:
            target, hid = symbols[name]
            href = (_rel(target, page) if target != page else '') + f'#{hid}'
        else:
            href = lookup(name)
            if not href or not urlsplit(href).scheme: continue
        a = soup.new_tag('a', href=href); code.wrap(a)

def _nav_html(sections, page):
    "The sidebar, with the current page marked: `sections` is [(title, [(site path, label)])]"
    out = []
    for title, links in sections:
        if not links: continue
        items = []
        for target, label in links:
            cls = ' class="active" aria-current="page"' if target == page else ''
            items.append(f'<li><a href="{escape(_rel(target, page))}"{cls}>{escape(label)}</a></li>')
        head = f'<h2 class="nav-section">{escape(title)}</h2>' if title else ''
        out.append(f'<div class="nav-group">{head}<ul>{"".join(items)}</ul></div>')
    return '\n'.join(out)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{head_title}</title>
<meta name="description" content="{description}">
<link rel="stylesheet" href="{root}styles.css">
<script src="{root}search.js" defer></script>
</head>
<body>
<header class="site-header"><a class="site-title" href="{root}index.html">{site}</a>
<div class="search" role="search">
<input type="search" id="search-input" placeholder="Search the docs ( / )" aria-label="Search the docs" autocomplete="off"
 spellcheck="false" aria-controls="search-results" aria-expanded="false">
<ul id="search-results" class="search-results" role="listbox" aria-label="Search results" hidden></ul>
</div>
</header>
<div class="layout">
<nav class="sidebar" aria-label="Documentation">
{nav}
</nav>
<main class="content" id="content">
<header class="page-header"><h1 class="page-title">{title}</h1>{lead}{api}</header>
{body}
</main>
</div>
</body>
</html>
"""

CSS = """
:root { --accent: #2c6cb0; --border: #dde2e8; --muted: #5c6670; --code-bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; }
a { color: var(--accent); }
.site-header { position: sticky; top: 0; z-index: 2; height: 3rem; display: flex; align-items: center; padding: 0 1.25rem;
  background: var(--accent); }
.site-title { color: #fff; font-weight: 600; font-size: 1.15rem; text-decoration: none; }
.layout { display: flex; align-items: flex-start; }
.sidebar { position: sticky; top: 3rem; flex: 0 0 16rem; width: 16rem; max-height: calc(100vh - 3rem); overflow-y: auto;
  padding: 1rem 1rem 2rem; border-right: 1px solid var(--border); font-size: .92rem; }
.sidebar .nav-section { font-size: .78rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted);
  margin: 1rem 0 .3rem; }
.sidebar ul { list-style: none; margin: 0; padding: 0; }
.sidebar li a { display: block; padding: .15rem .5rem; border-radius: 4px; color: #1f2328; text-decoration: none; }
.sidebar li a:hover { background: #eef2f6; }
.sidebar li a.active { background: #e3edf8; color: var(--accent); font-weight: 600; }
.content { flex: 1 1 auto; min-width: 0; max-width: 60rem; padding: 1.5rem 2.5rem 4rem; }
.page-title { margin: .2rem 0 .4rem; font-size: 2rem; }
.page-lead { color: var(--muted); font-size: 1.1rem; margin: 0 0 1.5rem; }
.page-lead p { margin: 0; }
.page-api { font-size: .92rem; color: var(--muted); margin: -1rem 0 1.5rem; }
.api-meta { font-size: .88rem; color: var(--muted); margin: -.3rem 0 .5rem; }
.api-kind { font-style: italic; }
.api-entry { border-top: 1px solid var(--border); margin-top: 1.6rem; }
.api-entry h2 { font-size: 1.3rem; margin: .8rem 0 .4rem; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.api-entry h3 { font-size: 1.05rem; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.anchor-link { visibility: hidden; margin-left: .3rem; text-decoration: none; color: var(--muted); }
h1:hover .anchor-link, h2:hover .anchor-link, h3:hover .anchor-link, h4:hover .anchor-link { visibility: visible; }
pre { background: var(--code-bg); padding: .7rem .9rem; border-radius: 6px; overflow-x: auto; font-size: .86rem;
  line-height: 1.45; margin: .4rem 0; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88em; }
:not(pre) > code { background: var(--code-bg); padding: .1em .3em; border-radius: 4px; }
.cell { margin: .6rem 0; }
.output_area pre { background: #fff; border: 1px solid var(--border); }
.output_area img { max-width: 100%; height: auto; }
.output_stderr pre { background: #fff8e6; }
.output_error pre { background: #fff0f0; }
.output_html { overflow-x: auto; }
.celltag_showdoc hr { border: 0; border-top: 1px solid var(--border); margin: 1.6rem 0 .4rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .92rem; }
th, td { border: 1px solid var(--border); padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: var(--code-bg); }
.search { position: relative; margin-left: auto; }
.search input { width: 18rem; max-width: 50vw; padding: .3rem .6rem; border: 0; border-radius: 4px; font: inherit;
  font-size: .92rem; }
.search-results { position: absolute; right: 0; top: 2.3rem; width: 34rem; max-width: 92vw; max-height: 70vh;
  overflow-y: auto; margin: 0; padding: .3rem 0; list-style: none; background: #fff; border: 1px solid var(--border);
  border-radius: 6px; box-shadow: 0 6px 24px rgba(0, 0, 0, .15); }
.search-results[hidden] { display: none; }
.search-results a { display: block; padding: .4rem .8rem; color: #1f2328; text-decoration: none; }
.search-results a:hover, .search-results a.active { background: #e3edf8; }
.search-where { display: block; font-weight: 600; color: var(--accent); }
.search-snippet { display: block; font-size: .85rem; color: var(--muted); }
.search-results mark { background: #fff2a8; color: inherit; }
.search-none { padding: .4rem .8rem; color: var(--muted); }
@media (max-width: 800px) { .layout { display: block; } .sidebar { position: static; width: auto; max-height: none;
  border-right: 0; border-bottom: 1px solid var(--border); } .content { padding: 1rem; } }
"""

# ------------------------------------------------------------------------------------------------ API reference

def api_page_of(module):
    "Site path of `module`'s API reference page: `fastprune.core.schedules` -> `api/core.schedules.html`"
    return f"api/{module.split('.', 1)[1] if '.' in module else module}.html"

def _signature(node):
    "Call signature of a `def` or a class (its `__init__`'s, without `self`) from its source"
    if isinstance(node, ast.ClassDef):
        init = next((n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == '__init__'), None)
        if init is None: return '()'
        args = copy.deepcopy(init.args)
        if args.posonlyargs: args.posonlyargs.pop(0)
        elif args.args: args.args.pop(0)
    else: args = node.args
    return f'({ast.unparse(args)})'

def module_api(lib_path, module):
    """[{name, kind, line, signature, doc}] of the names in `module`'s `__all__`, in `__all__`'s order, from its source;
    with the source file's path (relative to the repository)"""
    rel = Path(*module.split('.')[1:])
    f = next(p for p in (lib_path/rel.with_suffix('.py'), lib_path/rel/'__init__.py') if p.exists())
    tree = _module_tree(lib_path, module)
    names, _ = module_all(lib_path, module)
    nodes = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): nodes[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(t, ast.Name): nodes.setdefault(t.id, node)
    res = []
    for n in names:
        node = nodes.get(n)
        kind = ('class' if isinstance(node, ast.ClassDef) else 'function' if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                else 'value')
        doc = (ast.get_docstring(node) or '') if kind != 'value' else ''
        res.append(dict(name=n, kind=kind, line=getattr(node, 'lineno', None), doc=doc,
                        signature=_signature(node) if kind != 'value' else ''))
    src = f.relative_to(ROOT).as_posix() if f.is_relative_to(ROOT) else f.as_posix()
    return res, src

def _showdoc_entries(soup):
    "{heading text: h3 tag} of the `show_doc` entries of a rendered page"
    return {h.get_text().replace('¶', '').strip(): h for h in soup.select('.celltag_showdoc h3[id]')}

def _moved_copy(tags, src_page, page):
    "HTML of copies of `tags` (from `src_page`) for `page`: local links pointing where they pointed"
    out = []
    for t in tags:
        t = copy.copy(t)
        if hasattr(t, 'find_all'):
            for el, attr in [(a, 'href') for a in t.find_all('a', href=True)] + [(i, 'src') for i in t.find_all('img', src=True)]:
                if (tgt := _local_target(el[attr], src_page)) is None: continue
                path, frag = tgt
                el[attr] = _rel(path, page) + (f'#{frag}' if frag else '')
        out.append(str(t))
    return ''.join(out)

def api_pages(modules, lib_path, writers, page_titles, descriptions, soups):
    """{page: dict(title, description, lead, body)} for the API reference: one page per module (every public name with
    its signature and docstring, as its `show_doc` entry renders them where that page is built, else from the source;
    methods documented with `show_doc` under their class; each linked to where its notebook page documents it), and
    an index of the modules. `writers` maps a module to the notebooks exporting to it (the one with its `default_exp` first)."""
    pages, index_rows = {}, []
    for mod in modules:
        page = api_page_of(mod)
        api, src = module_api(lib_path, mod)
        if not api: continue
        doc_pages = [page_of(nb) for nb in writers[mod]]
        entries = {p: _showdoc_entries(soups[p]) for p in doc_pages if p in soups}
        def where(name):
            for p, es in entries.items():
                if name in es: return p, es[name]
            return None, None
        parts = ['<p class="api-module">Source: <code>' + escape(src) + '</code>. Documented in ' +
                 ', '.join(f'<a href="{escape(_rel(p, page))}">{escape(page_titles.get(p, p))}</a>' for p in doc_pages) + '.</p>']
        for o in api:
            name = o['name']
            p, h = where(name)
            kind = f'<span class="api-kind">{o["kind"]}</span>'
            links = [f'<code>{escape(src)}{":" + str(o["line"]) if o["line"] else ""}</code>']
            if p: links.insert(0, f'documented in <a href="{escape(_rel(p, page))}#{escape(h["id"])}">{escape(page_titles.get(p, p))}</a>')
            else:  # a value (a table of choices...) is named in its notebooks' prose
                links.insert(0, 'see ' + ', '.join(f'<a href="{escape(_rel(d, page))}">{escape(page_titles.get(d, d))}</a>' for d in doc_pages))
            parts.append(f'<section class="api-entry"><h2>{escape(name)}</h2><p class="api-meta">{kind} · {" · ".join(links)}</p>')
            if h is not None:  # the rendered show_doc entry: signature, docstring, parameters
                parts.append(_moved_copy(h.find_next_siblings(), p, page))
                for sub, sh in entries[p].items():  # methods shown with show_doc
                    if sub.startswith(name + '.'):
                        parts.append(f'<h3>{escape(sub)}</h3><p class="api-meta"><a href="{escape(_rel(p, page))}#{escape(sh["id"])}">'
                                     f'documented in {escape(page_titles.get(p, p))}</a></p>' + _moved_copy(sh.find_next_siblings(), p, page))
            elif o['kind'] != 'value':
                parts.append(f'<div class="highlight"><pre>{escape(("class " if o["kind"] == "class" else "def ") + name + o["signature"])}</pre></div>')
                if o['doc']: parts.append(f'<p><em>{escape(o["doc"].strip().split(chr(10) + chr(10))[0])}</em></p>')
            parts.append('</section>')
        desc = descriptions.get(page_of(writers[mod][0]), '')
        pages[page] = dict(title=mod, description=desc, lead=f'<p>{escape(desc)}</p>' if desc else '', body='\n'.join(parts))
        names = ', '.join(f'<a href="{escape(_rel(page, "api/index.html"))}#{_slug(o["name"])}"><code>{escape(o["name"])}</code></a>' for o in api)
        index_rows.append(f'<tr><td><a href="{escape(_rel(page, "api/index.html"))}">{escape(mod)}</a></td><td>{escape(desc)}</td><td>{names}</td></tr>')
    if pages:
        pages['api/index.html'] = dict(title='API reference', description='Every public name of the library, module by module.',
                                       lead='<p>Every public name of the library, module by module.</p>',
                                       body='<table class="api-index"><thead><tr><th>module</th><th>what it holds</th><th>public names</th></tr></thead>'
                                            f'<tbody>{"".join(index_rows)}</tbody></table>')
    return pages

# ------------------------------------------------------------------------------------------------- search

ASSETS = NBS/'docs_assets'  # files copied as they are into the site (search.js)
_re_heading = re.compile('^h[1-6]$')

def search_entries(page, title, description, body):
    """Search index entries of one page: one per section (the text up to its first heading, then one per heading with
    an id, `show_doc` entries included), each {url (site path, with the heading's anchor), title, section, text}. The
    prose, code and `show_doc` output of a section are indexed; other outputs (printed numbers, tables of results) are not."""
    from bs4 import NavigableString, Tag
    entries, cur = [], dict(url=page, title=title, section='', text=[description])
    def flush():
        text = re.sub(r'\s+', ' ', ''.join(cur['text'])).strip()
        if text or cur['section']: entries.append(dict(cur, text=text))
    for node in body.descendants:
        if isinstance(node, Tag):
            if _re_heading.match(node.name) and node.get('id'):
                flush()
                heading = node.get_text().replace('¶', '').strip()
                cur = dict(url=f'{page}#{node["id"]}', title=title, section=heading, text=[])
            continue
        if type(node) is not NavigableString: continue  # comments, doctypes, CDATA
        parents = list(node.parents)
        if any(p.name in ('script', 'style') or _re_heading.match(p.name or '') for p in parents): continue
        out = next((p for p in parents if 'output_area' in (p.get('class') or [])), None)
        if out is not None and not any('celltag_showdoc' in (p.get('class') or []) for p in parents): continue
        cur['text'].append(str(node))
    flush()
    return entries

def write_search_index(out, entries):
    "`search.json` and `search_index.js` (the same list, loadable by a `<script>` on pages opened from disk), and `search.js`"
    data = json.dumps(entries, ensure_ascii=False, separators=(',', ':'))
    (out/'search.json').write_text(data)
    (out/'search_index.js').write_text(f'window.fastpruneSearchIndex = {data};\n')
    shutil.copy2(ASSETS/'search.js', out/'search.js')

def _css():
    from pygments.formatters import HtmlFormatter
    return CSS + HtmlFormatter(style='default').get_style_defs('.highlight')

def _local_target(href, page):
    "(site path, fragment) a local `href` on `page` points to, or None for external links"
    u = urlsplit(href)
    if u.scheme or u.netloc or href.startswith('//'): return None
    path = posixpath.normpath(posixpath.join(posixpath.dirname(page), u.path)) if u.path else page
    return path, u.fragment

def check_links(soups, anchors, unbuilt, out, nbs):
    "Dead local links of all pages; local files the pages use (images...) are copied from `nbs` into `out`"
    dead = []
    for page, soup in soups.items():
        for tag, attr in (('a', 'href'), ('img', 'src'), ('link', 'href'), ('script', 'src')):
            for el in soup.find_all(tag, **{attr: True}):
                t = _local_target(el[attr], page)
                if t is None: continue
                path, frag = t
                if path in anchors:
                    if frag and frag not in anchors[path]: dead.append(f'{page}: link {el[attr]!r}: {path} has no anchor #{frag}')
                elif path in unbuilt: continue
                elif path.startswith('..'): dead.append(f'{page}: link {el[attr]!r} leaves the site')
                elif (out/path).is_file(): continue
                elif (nbs/path).is_file() and not path.endswith(('.ipynb', '.py')):
                    (out/path).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(nbs/path, out/path)
                else: dead.append(f'{page}: dead link {el[attr]!r}: no page or file {path}')
    return dead

def _prepare_out(out):
    "Empty `out` for a fresh build, refusing to wipe a non-empty folder that is not a docs site (this script's or Quarto's)"
    if out.exists() and any(out.iterdir()):
        if not ((out/_MARKER).exists() or (out/'site_libs').is_dir()):
            raise DocsError(f'{out} exists, is not empty and is not a docs build: not wiping it (remove it or pass another --out)')
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out/_MARKER).write_text('made by nbs/build_docs.py; wiped on each build\n')

def site_title(nbs):
    from nbdev.config import get_config
    cfg = yaml.safe_load((nbs/'_quarto.yml').read_text()) or {}
    return (cfg.get('website') or {}).get('title') or get_config(ROOT).get('title') or get_config(ROOT).lib_path.name

def build(nbs=NBS, out=None, execute=False, slow=False, only=None, n_workers=None, log=print):
    "Build the site; returns the list of problems (empty when the build succeeded)"
    from bs4 import BeautifulSoup
    from nbdev.config import get_config
    from nbdev.doclinks import NbdevLookup
    cfg = get_config(ROOT)
    nbs, out = Path(nbs).resolve(), Path(out or cfg.doc_path).resolve()
    notebooks = find_notebooks(nbs)
    todo = [nb for nb in notebooks if not only or any(fnmatch.fnmatch(nb, g) for g in only)]
    if not todo: raise DocsError(f'no notebook in {nbs} matches {only}')
    problems = []
    sections, missing = load_sidebar(nbs, notebooks)
    for m in missing:  # a subset build may lack pages the full site has; a full build may not
        msg = f'_quarto.yml sidebar lists {m}, which is not a notebook in {nbs}'
        if only: log(f'warning: {msg}')
        else: problems.append(msg)
    in_nav = {nb for _, s in sections for nb in s}
    for nb in todo:
        if nb not in in_nav: log(f'warning: {nb} is in no sidebar section of _quarto.yml (its page is built but not listed)')
    for nb, names in undocumented(nbs, todo, cfg.lib_path, cfg.lib_path.name).items():
        problems.append(f'{nb}: public symbol(s) not documented: {", ".join(names)} (add a `show_doc(name)` cell; a name '
                        'that is not a function or class may instead be named as `inline code` in the prose; or make it private with a leading _)')

    _prepare_out(out)
    skip_flags = cfg.tst_flags.split() if isinstance(cfg.tst_flags, str) else list(cfg.tst_flags or [])
    jobs = [(nbs, nb, execute, skip_flags, ['slow'] if slow else []) for nb in todo]
    n_workers = max(1, min(n_workers or os.cpu_count() or 1, len(jobs)))
    log(f'rendering {len(jobs)} notebook(s) with {n_workers} worker(s){" (executing)" if execute else ""}...')
    import multiprocessing
    try:  # one fresh process per notebook, as nbdev-test isolates notebooks
        with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context('spawn'), max_tasks_per_child=1) as ex:
            results = list(ex.map(render_notebook, jobs))
    except BrokenProcessPool as e: raise DocsError(f'a notebook process died (out of memory? killed?): {e}') from None
    rendered = {}
    for r in results:
        if 'error' in r: problems.append(f'{r["rel"]}: failed to build:\n{r["error"].rstrip()}')
        else: rendered[r['rel']] = r; log(f'  {r["rel"]} -> {page_of(r["rel"])}')

    soups, anchors, symbols = {}, {}, {}
    for nb, r in rendered.items():
        page = page_of(nb)
        soup = BeautifulSoup(r['body'], 'html.parser')
        for name, hid in _fix_headings(soup).items(): symbols.setdefault(name, (page, hid))  # API pages sort first
        _rewrite_nb_links(soup, page, nb)
        soups[page] = soup
        anchors[page] = {el['id'] for el in soup.find_all(id=True)} | {el['name'] for el in soup.find_all('a', attrs={'name': True})}
    lookup = NbdevLookup(strip_libs='fastai fastcore').doc
    for page, soup in soups.items(): _link_symbols(soup, page, symbols, lookup)

    # the API reference: a page per module the built notebooks export to, and its index
    lib = cfg.lib_path.name
    exports = {nb: exported_modules(nbs/nb, lib) for nb in notebooks}
    modules = sorted(set().union(*(exports[nb] for nb in todo)))
    writers = {m: sorted((nb for nb in notebooks if m in exports[nb]), key=lambda nb: default_exp(nbs/nb, lib) != m) for m in modules}
    titles = {page_of(nb): r['title'] for nb, r in rendered.items()}
    api = api_pages(modules, cfg.lib_path, writers, titles, {page_of(nb): r['description'] for nb, r in rendered.items()}, soups)
    pages = {page_of(nb): r for nb, r in rendered.items()}
    for page, r in api.items():
        soup = BeautifulSoup(r['body'], 'html.parser')
        _fix_headings(soup)
        _link_symbols(soup, page, symbols, lookup)
        soups[page], pages[page] = soup, r
        anchors[page] = {el['id'] for el in soup.find_all(id=True)}
    nav = [(title, [(page_of(nb), titles.get(page_of(nb), Path(nb).stem)) for nb in nbs_]) for title, nbs_ in sections]
    if api: nav.append(('API reference', [('api/index.html', 'Overview')] + [(api_page_of(m), m) for m in modules if api_page_of(m) in api]))
    api_of = {page_of(nb): [m for m in sorted(exports[nb]) if api_page_of(m) in api] for nb in rendered}

    site = site_title(nbs)
    (out/'styles.css').write_text(_css())
    search = []
    for page, r in pages.items():
        root = _rel('.', page) + '/' if '/' in page else ''
        search += search_entries(page, r['title'], BeautifulSoup(r['lead'], 'html.parser').get_text(), soups[page])
        lead = f'<div class="page-lead">{r["lead"]}</div>' if r['lead'] else ''
        refs = ', '.join(f'<a href="{escape(_rel(api_page_of(m), page))}"><code>{escape(m)}</code></a>' for m in api_of.get(page, []))
        head_title = escape(r['title'] if r['title'] == site else f"{r['title']} – {site}")
        html = PAGE.format(title=escape(r['title']), head_title=head_title, site=escape(site), description=escape(r['description']), root=root,
                           nav=_nav_html(nav, page), lead=lead, body=str(soups[page]),
                           api=f'<p class="page-api">API reference: {refs}</p>' if refs else '')
        soups[page] = BeautifulSoup(html, 'html.parser')  # the whole page, nav included, is what gets link-checked
        (out/page).parent.mkdir(parents=True, exist_ok=True)
        (out/page).write_text(html)
    write_search_index(out, search)
    anchors.update({p: anchors[p] | {el['id'] for el in s.find_all(id=True)} for p, s in soups.items()})
    unbuilt = {page_of(nb) for nb in notebooks} - set(soups)
    problems += check_links(soups, anchors, unbuilt, out, nbs)
    log(f'{len(soups)} page(s) written to {out}')
    return problems

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--execute', action='store_true', help='run the notebooks (what nbdev-test runs) and show fresh outputs')
    p.add_argument('--slow', action='store_true', help='with --execute, run `#| slow` cells too')
    p.add_argument('--out', help='output folder (default: doc_path of pyproject.toml, _docs)')
    p.add_argument('--only', nargs='+', metavar='GLOB', help='build only the notebooks matching these globs (relative to nbs/)')
    p.add_argument('--nbs', default=str(NBS), help=argparse.SUPPRESS)  # another notebooks folder (the tests use it)
    p.add_argument('--n-workers', type=int, help='notebooks rendered in parallel (default: number of CPUs)')
    p.add_argument('--readme', action='store_true', help='write README.md from nbs/index.ipynb, then stop')
    a = p.parse_args(argv)
    if a.readme:
        (ROOT/'README.md').write_text(readme_text(a.nbs))
        print('README.md written from index.ipynb')
        return 0
    try: problems = build(a.nbs, a.out, a.execute, a.slow, a.only, a.n_workers)
    except DocsError as e: problems = [str(e)]
    if problems:
        print(f'\ndocs build FAILED, {len(problems)} problem(s):', file=sys.stderr)
        for pr in problems: print(f'- {pr}', file=sys.stderr)
        return 1
    print('docs build OK')
    return 0

if __name__ == '__main__': sys.exit(main())
