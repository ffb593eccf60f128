// Jobs page: the user's jobs (an admin: everyone's, with the owner), refreshed every 2 s
// by GET /api/v1/jobs; rows are updated in place so nothing jumps or loses focus.
'use strict';

DF.start(async (user) => {
  const isAdmin = user.role === 'admin';
  const body = DF.$('#jobs-body');
  const card = DF.$('#jobs-card');
  const empty = DF.$('#jobs-empty');
  const loading = DF.$('#jobs-loading');
  const mine = DF.$('#mine');
  const rows = new Map(); // id -> {tr, cells...}
  const lastState = new Map();

  if (isAdmin) {
    DF.$('#mine-toggle').hidden = false;
    DF.$('#jobs-sub').textContent = 'Every user’s jobs, newest first.';
    mine.checked = new URLSearchParams(location.search).get('mine') === '1';
    mine.addEventListener('change', () => {
      const url = new URL(location.href);
      if (mine.checked) url.searchParams.set('mine', '1');
      else url.searchParams.delete('mine');
      history.replaceState(null, '', url);
      DF.$('#jobs-sub').textContent = mine.checked
        ? 'Your jobs, newest first.'
        : 'Every user’s jobs, newest first.';
      refresh();
    });
  }
  const showOwner = () => isAdmin && !mine.checked;

  function makeRow(job) {
    const link = DF.el('a', {class: 'job-name', href: '/jobs/' + encodeURIComponent(job.id)});
    const sub = DF.el('span', {class: 'job-sub'});
    const owner = DF.el('td', {'data-label': 'Owner', class: 'col-owner'});
    const state = DF.el('td', {'data-label': 'State'});
    const bar = DF.el('progress', {class: 'bar', max: '1', value: '0'});
    const progressText = DF.el('span');
    const rate = DF.el('span');
    const progress = DF.el(
      'td',
      {'data-label': 'Progress', class: 'cell-progress'},
      DF.el('div', {class: 'progress-cell'}, bar, DF.el('div', {class: 'progress-meta'}, progressText, rate)),
    );
    const strings = DF.el('td', {'data-label': 'Strings', class: 'num'});
    const low = DF.el('td', {'data-label': 'Strings to check', class: 'num'});
    const failed = DF.el('td', {'data-label': 'Failed pages', class: 'num'});
    const when = DF.el('td', {'data-label': 'Submitted', class: 'nowrap'});
    const tr = DF.el(
      'tr',
      {dataset: {id: String(job.id)}},
      DF.el('td', {class: 'cell-main'}, link, sub),
      owner,
      state,
      progress,
      strings,
      low,
      failed,
      when,
    );
    bar.setAttribute('aria-label', 'Progress of job ' + (job.name || job.id));
    return {tr, link, sub, owner, state, bar, progressText, rate, strings, low, failed, when};
  }

  function fillRow(r, job) {
    r.link.textContent = job.name || 'Job ' + job.id;
    r.sub.textContent = '#' + job.id + (job.template ? ' · ' + job.template : '');
    r.owner.textContent = job.owner ?? '';
    r.owner.hidden = !showOwner();
    const shown = job.state + (job.cancel_requested ? '/cancel' : '');
    if (r.state.dataset.state !== shown) {
      DF.clear(r.state).append(DF.stateBadge(job.state, job));
      r.state.dataset.state = shown;
    }
    DF.updateProgress(r.bar, job);
    r.progressText.textContent = DF.jobProgressText(job);
    r.rate.textContent = DF.rateText(job);
    r.strings.textContent = DF.int(job.strings);
    r.low.textContent = DF.int(job.low_confidence);
    r.failed.textContent = DF.int(job.pages_failed);
    r.when.textContent = DF.ago(job.created_ms);
    r.when.title = DF.dateTime(job.created_ms);
  }

  async function refresh() {
    const data = await DF.api('GET', '/api/v1/jobs' + (isAdmin && mine.checked ? '?mine=1' : ''));
    const jobs = data.jobs || [];
    loading.hidden = true;
    DF.clearError();
    empty.hidden = jobs.length > 0;
    card.hidden = jobs.length === 0;
    DF.$$('.col-owner').forEach((n) => (n.hidden = !showOwner()));

    const seen = new Set();
    let prev = null;
    for (const job of jobs) {
      const id = String(job.id);
      seen.add(id);
      let r = rows.get(id);
      if (!r) {
        r = makeRow(job);
        rows.set(id, r);
      }
      fillRow(r, job);
      // keep the server's order without re-inserting rows that are already in place
      const want = prev ? prev.nextSibling : body.firstChild;
      if (want !== r.tr) body.insertBefore(r.tr, want);
      prev = r.tr;

      const before = lastState.get(id);
      if (before && before !== job.state) {
        DF.announce('Job ' + (job.name || id) + ' is ' + job.state + '.');
      }
      lastState.set(id, job.state);
    }
    for (const [id, r] of rows) {
      if (!seen.has(id)) {
        r.tr.remove();
        rows.delete(id);
      }
    }
  }

  await refresh();
  DF.poll(refresh, 2000);
});
