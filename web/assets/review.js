// Review page: low-confidence digit crops (GET /api/v1/review) in a grid that works from
// the keyboard: a digit key labels the selected crop, Enter confirms the guess, x marks
// "not a digit"; each answer is POST /api/v1/review and the selection moves on.
'use strict';

DF.start(async () => {
  const grid = DF.$('#review-grid');
  const empty = DF.$('#review-empty');
  const loading = DF.$('#review-loading');
  const labelBar = DF.$('#label-bar');
  const current = DF.$('#label-current');
  let items = []; // {d, card, done}
  let index = -1;
  let reviewed = 0;
  let sending = false;
  let total = 0; // all the digits waiting, as the server counts them

  async function load() {
    loading.hidden = false;
    empty.hidden = true;
    const data = await DF.api('GET', '/api/v1/review?limit=40');
    total = data.total ?? (data.digits || []).length;
    loading.hidden = true;
    DF.clear(grid);
    items = (data.digits || []).map((d, i) => ({d, card: card(d, i), done: false}));
    items.forEach((it) => grid.append(it.card));
    updateCounts();
    DF.$('#review-help').hidden = items.length === 0;
    if (items.length) select(0, false);
    else showEmpty(reviewed > 0);
  }

  function showEmpty(caughtUp) {
    empty.hidden = false;
    labelBar.hidden = true;
    DF.$('#empty-title').textContent = caughtUp ? 'All caught up' : 'Nothing to review';
    DF.$('#empty-text').textContent = caughtUp
      ? 'Every uncertain digit here has an answer. Thank you — these samples go into the next retraining.'
      : 'When a job reads a digit with low confidence, it shows up here for you to confirm or correct.';
  }

  // Where a digit comes from: its page's file name (and page, in a TIFF or PDF), and under
  // it its string, the digit in brackets ("180[6]1991"); the whole path on hover.
  function card(d, i) {
    const key = String(d.page); // "path#page_index"
    const hash = key.lastIndexOf('#');
    const pageIndex = hash >= 0 ? Number(key.slice(hash + 1)) : 0;
    const file = (hash >= 0 ? key.slice(0, hash) : key).split('/').pop() + (pageIndex > 0 ? ' p' + (pageIndex + 1) : '');
    const s = String(d.string || '');
    let at = -1; // the digit's place in the string's text (which may hold a '.')
    for (let k = 0, n = 0; k < s.length && at < 0; ++k) if (/[0-9]/.test(s[k]) && n++ === d.digit_index) at = k;
    const marked = at >= 0 ? s.slice(0, at) + '[' + s[at] + ']' + s.slice(at + 1) : s;
    const full = 'job ' + d.job + ' · ' + d.page + (s ? ' · string ' + s : '');
    const li = DF.el(
      'li',
      {
        class: 'review-card',
        tabindex: '-1',
        role: 'button',
        'aria-label':
          'Digit ' + (i + 1) + ': the model guessed ' + d.guess + ' with ' + DF.confText(d.confidence) + ' confidence, ' + full,
        dataset: {index: String(i)},
      },
      DF.el('div', {class: 'crop'}, DF.el('img', {src: d.crop_url, alt: '', loading: 'lazy'})),
      DF.el(
        'div',
        {class: 'guess-row'},
        DF.el('span', {class: 'guess', title: 'the model’s guess'}, String(d.guess)),
        DF.confChip(d.confidence),
      ),
      DF.el('div', {class: 'where', title: full}, file),
      marked ? DF.el('div', {class: 'where where-string', title: full}, marked) : null,
    );
    li.addEventListener('click', () => select(i, true));
    return li;
  }

  function select(i, focus = true) {
    if (i < 0 || i >= items.length) return;
    if (index >= 0 && items[index]) items[index].card.classList.remove('current');
    index = i;
    const it = items[i];
    it.card.classList.add('current');
    items.forEach((x, k) => x.card.setAttribute('tabindex', k === i ? '0' : '-1'));
    if (focus) it.card.focus();
    labelBar.hidden = false;
    current.textContent = it.done
      ? 'Labelled ' + labelText(it.label) + ' (type again to change)'
      : 'Guess ' + it.d.guess + ' at ' + DF.confText(it.d.confidence);
    DF.$('#accept-guess').textContent = 'Confirm ' + it.d.guess;
  }

  const labelText = (l) => (l === 10 ? '“not a digit”' : String(l));

  function nextOpen(from) {
    for (let k = from + 1; k < items.length; k++) if (!items[k].done) return k;
    for (let k = 0; k <= from && k < items.length; k++) if (!items[k].done) return k;
    return -1;
  }

  function updateCounts() {
    DF.$('#count-done').textContent = DF.int(reviewed);
    const doneHere = items.filter((x) => x.done).length;
    DF.$('#count-left').textContent = DF.int(Math.max(0, total - doneHere));
  }

  async function label(value) {
    if (index < 0 || sending) return;
    const it = items[index];
    const d = it.d;
    sending = true;
    try {
      await DF.api('POST', '/api/v1/review', {
        job: d.job,
        page: d.page,
        string_index: d.string_index,
        digit_index: d.digit_index,
        label: value,
      });
      if (!it.done) reviewed++;
      it.done = true;
      it.label = value;
      it.card.classList.add('done');
      const mark = it.card.querySelector('.done-mark') || DF.el('span', {class: 'done-mark'});
      mark.textContent = value === 10 ? '✗ not a digit' : '✓ ' + value;
      it.card.append(mark);
      DF.announce('Labelled ' + labelText(value) + '.');
      updateCounts();
      const next = nextOpen(index);
      if (next >= 0) select(next, true);
      else {
        // this batch is done: fetch the next one (or show the caught-up state)
        await load();
      }
    } catch (err) {
      DF.showError(err);
    } finally {
      sending = false;
    }
  }

  grid.addEventListener('keydown', (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const cols = Math.max(1, Math.round(grid.clientWidth / (items[0]?.card.offsetWidth || 160)));
    if (/^[0-9]$/.test(e.key)) {
      e.preventDefault();
      label(Number(e.key));
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      if (index >= 0) label(items[index].d.guess);
    } else if (e.key === 'x' || e.key === 'X') {
      e.preventDefault();
      label(10);
    } else if (e.key === 'ArrowRight') {
      e.preventDefault();
      select(Math.min(items.length - 1, index + 1));
    } else if (e.key === 'ArrowLeft') {
      e.preventDefault();
      select(Math.max(0, index - 1));
    } else if (e.key === 'ArrowDown') {
      e.preventDefault();
      select(Math.min(items.length - 1, index + cols));
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      select(Math.max(0, index - cols));
    } else if (e.key === 'Home') {
      e.preventDefault();
      select(0);
    } else if (e.key === 'End') {
      e.preventDefault();
      select(items.length - 1);
    }
  });

  for (const b of DF.$$('#label-bar [data-label]')) {
    b.addEventListener('click', () => label(Number(b.dataset.label)));
  }
  DF.$('#accept-guess').addEventListener('click', () => index >= 0 && label(items[index].d.guess));
  DF.$('#reload').addEventListener('click', () => load().catch(DF.showError));

  await load();
});
