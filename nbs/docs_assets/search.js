// Full-text search of the docs site built by nbs/build_docs.py: no server, no network. The builder writes the index
// twice, as search.json and as search_index.js (the same list assigned to a global): a <script> can load the latter
// from a page opened as a file (file://), where fetch() of a JSON file is refused. It is loaded on first use.
// Each entry is one section of a page: {url: site path with the heading's anchor, title, section, text}.
(function () {
  'use strict';
  const base = new URL('.', document.currentScript.src);  // the site's root: this file sits there
  const MAX_RESULTS = 12;
  let index = null, loading = null;

  function load() {
    if (index) return Promise.resolve(index);
    if (!loading) loading = new Promise(function (resolve, reject) {
      const s = document.createElement('script');
      s.src = new URL('search_index.js', base).href;
      s.onload = function () {
        index = (window.fastpruneSearchIndex || []).map(function (e) {
          return {url: e.url, title: e.title, section: e.section, text: e.text,
                  t: e.title.toLowerCase(), s: e.section.toLowerCase(), x: e.text.toLowerCase()};
        });
        resolve(index);
      };
      s.onerror = function () { loading = null; reject(new Error('search index not found')); };
      document.head.appendChild(s);
    });
    return loading;
  }

  function terms(q) {
    return q.toLowerCase().split(/[^\w.]+/).map(function (t) { return t.replace(/^\.+|\.+$/g, ''); })
      .filter(function (t) { return t.length > 0; });
  }

  function count(hay, needle, cap) {
    let n = 0, i = hay.indexOf(needle);
    while (i !== -1 && n < cap) { n++; i = hay.indexOf(needle, i + needle.length); }
    return n;
  }

  function isWord(hay, needle) {
    return new RegExp('(^|[^\\w])' + needle.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '($|[^\\w])').test(hay);
  }

  // Entries holding every term (in title, section or text), best first: a term naming the section counts most
  function search(q) {
    const ts = terms(q);
    if (!ts.length || !index) return [];
    const hits = [];
    for (const e of index) {
      let score = 0, ok = true;
      for (const t of ts) {
        const inS = e.s.indexOf(t) !== -1, inT = e.t.indexOf(t) !== -1, n = count(e.x, t, 10);
        if (!inS && !inT && !n) { ok = false; break; }
        score += (inS ? (e.s === t ? 60 : isWord(e.s, t) ? 25 : 10) : 0) + (inT ? (isWord(e.t, t) ? 8 : 4) : 0) + n;
        if (n && isWord(e.x, t)) score += 2;
      }
      if (ok) hits.push({e: e, score: score});
    }
    hits.sort(function (a, b) { return b.score - a.score; });
    return hits.slice(0, MAX_RESULTS).map(function (h) { return h.e; });
  }

  function esc(s) {
    return s.replace(/[&<>"']/g, function (c) { return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]; });
  }

  function highlight(text, ts) {
    const re = new RegExp('(' + ts.map(function (t) { return t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }).join('|') + ')', 'ig');
    return text.split(re).map(function (part, i) { return i % 2 ? '<mark>' + esc(part) + '</mark>' : esc(part); }).join('');
  }

  function snippet(e, ts) {
    let at = -1;
    for (const t of ts) { const i = e.x.indexOf(t); if (i !== -1 && (at === -1 || i < at)) at = i; }
    if (at === -1) return highlight(e.text.slice(0, 160), ts);
    let start = Math.max(0, at - 60);
    const end = Math.min(e.text.length, at + 120), space = e.text.indexOf(' ', start);
    if (start && space !== -1 && space < at) start = space + 1;  // from a word's start
    return (start ? '… ' : '') + highlight(e.text.slice(start, end), ts) + (end < e.text.length ? ' …' : '');
  }

  function setup() {
    const input = document.getElementById('search-input'), list = document.getElementById('search-results');
    if (!input || !list) return;
    let active = -1;

    function links() { return Array.prototype.slice.call(list.querySelectorAll('a')); }
    function hide() { list.hidden = true; active = -1; input.setAttribute('aria-expanded', 'false'); }
    function mark(i) {
      const ls = links();
      if (!ls.length) return;
      active = (i + ls.length) % ls.length;
      ls.forEach(function (a, j) { a.classList.toggle('active', j === active); a.setAttribute('aria-selected', j === active); });
      ls[active].scrollIntoView({block: 'nearest'});
    }
    function render() {
      const q = input.value.trim();
      if (!q) { list.innerHTML = ''; hide(); return; }
      load().then(function () {
        if (input.value.trim() !== q) return;  // typed on meanwhile: that input renders
        const ts = terms(q), res = search(q);
        list.innerHTML = res.length ? res.map(function (e) {
          const where = e.section ? esc(e.title) + ' › ' + highlight(e.section, ts) : highlight(e.title, ts);
          return '<li role="option"><a href="' + esc(new URL(e.url, base).href) + '"><span class="search-where">' + where +
                 '</span><span class="search-snippet">' + snippet(e, ts) + '</span></a></li>';
        }).join('') : '<li class="search-none">No results for “' + esc(q) + '”</li>';
        list.hidden = false; active = -1; input.setAttribute('aria-expanded', 'true');
      }, function (err) {
        list.innerHTML = '<li class="search-none">Search is unavailable: ' + esc(err.message) + '</li>';
        list.hidden = false;
      });
    }

    input.addEventListener('input', render);
    input.addEventListener('focus', function () { load().catch(function () {}); if (input.value.trim()) render(); });
    input.addEventListener('keydown', function (ev) {
      if (ev.key === 'ArrowDown') { ev.preventDefault(); mark(active + 1); }
      else if (ev.key === 'ArrowUp') { ev.preventDefault(); mark(active - 1); }
      else if (ev.key === 'Escape') { input.value = ''; list.innerHTML = ''; hide(); }
      else if (ev.key === 'Enter') {
        const ls = links();
        if (ls.length) { ev.preventDefault(); hide(); window.location.href = ls[Math.max(active, 0)].href; }
      }
    });
    list.addEventListener('click', function (ev) { if (ev.target.closest('a')) hide(); });
    document.addEventListener('click', function (ev) { if (!ev.target.closest('.search')) hide(); });
    document.addEventListener('keydown', function (ev) {  // "/" focuses the search box, as on most docs sites
      const tag = (document.activeElement || {}).tagName;
      if (ev.key === '/' && tag !== 'INPUT' && tag !== 'TEXTAREA') { ev.preventDefault(); input.focus(); }
    });
  }

  window.fastpruneSearch = {load: load, search: search};  // for the tests (and the console)
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', setup); else setup();
})();
