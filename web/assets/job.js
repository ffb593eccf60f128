// A job's page (/jobs/{id}): header with state, progress and counts (polled every 2 s
// while queued or running), downloads, cancel, and the pages with the strings read,
// their confidence and the overlay images, filtered and paged.
'use strict';

DF.start(async () => {
  const parts = location.pathname.split('/').filter(Boolean);
  const id = decodeURIComponent(parts[1] || '');
  const base = '/api/v1/jobs/' + encodeURIComponent(id);
  const PAGE_SIZE = 20;
  // The legend's bands at the server's pipeline.low_confidence.
  const lowPct = Math.round(DF.lowConfidence * 1000) / 10;
  const low = DF.fixed(lowPct, Number.isInteger(lowPct) ? 0 : 1) + '%';
  DF.$('#legend-mid').textContent = low + '–99%';
  DF.$('#legend-lo').textContent = '< ' + low;
  DF.$('#st-low-label').title = 'strings read below ' + low + ' (pipeline.low_confidence)';

  const head = DF.$('#job-head');
  const bar = DF.$('#job-bar');
  const cancelBtn = DF.$('#cancel-job');
  const list = DF.$('#page-list');
  const pagesStatus = DF.$('#pages-status');
  const pager = DF.$('#pager');
  const filterButtons = DF.$$('.filters button');

  let job = null;
  let filter = 'all';
  let from = 0;
  let shownDone = -1; // pages_done when the page list was last loaded
  let loadingPages = false;
  let rendered = new Map(); // page signature -> its list item

  DF.$('#dl-jsonl').href = base + '/results?format=jsonl&download=1';
  DF.$('#dl-csv').href = base + '/results?format=csv&download=1';

  cancelBtn.addEventListener('click', async () => {
    if (!confirm('Cancel this job? Pages already read keep their results.')) return;
    cancelBtn.disabled = true;
    try {
      await DF.api('POST', base + '/cancel');
      await refreshJob();
    } catch (err) {
      DF.showError(err);
    } finally {
      cancelBtn.disabled = false;
    }
  });

  for (const b of filterButtons) {
    b.addEventListener('click', () => {
      filter = b.dataset.filter;
      from = 0;
      filterButtons.forEach((x) => x.setAttribute('aria-pressed', String(x === b)));
      loadPages();
    });
  }
  DF.$('#prev-page').addEventListener('click', () => {
    from = Math.max(0, from - PAGE_SIZE);
    loadPages(true);
  });
  DF.$('#next-page').addEventListener('click', () => {
    from += PAGE_SIZE;
    loadPages(true);
  });

  function renderJob(j) {
    job = j;
    document.title = (j.name || 'Job ' + j.id) + ' · digitflow';
    DF.$('#job-name').textContent = j.name || 'Job ' + j.id;
    DF.clear(DF.$('#job-state')).append(DF.stateBadge(j.state, j));
    const meta = ['#' + j.id];
    if (j.owner !== undefined && j.owner !== null && DF.user && DF.user.role === 'admin') meta.push('owner ' + j.owner);
    meta.push(j.template ? 'template ' + j.template : 'no template');
    meta.push('submitted ' + DF.dateTime(j.created_ms));
    DF.$('#job-meta').textContent = meta.join(' · ');

    DF.updateProgress(bar, j);
    DF.$('#job-progress-text').textContent = DF.jobProgressText(j);
    DF.$('#job-rate').textContent = DF.rateText(j);

    DF.$('#st-pages').textContent =
      j.pages_total >= 0 ? DF.int(j.pages_done) + ' / ' + DF.int(j.pages_total) : DF.int(j.pages_done);
    DF.$('#st-strings').textContent = DF.int(j.strings);
    DF.$('#st-low').textContent = DF.int(j.low_confidence);
    DF.$('#st-failed').textContent = DF.int(j.pages_failed);
    DF.$('#st-low-box').classList.toggle('stat-warn', j.low_confidence > 0);
    DF.$('#st-failed-box').classList.toggle('stat-bad', j.pages_failed > 0);
    let seconds = null;
    if (j.started_ms) seconds = ((j.finished_ms || Date.now()) - j.started_ms) / 1000;
    DF.$('#st-time').textContent = seconds === null ? '–' : DF.duration(seconds);

    const err = DF.$('#job-error');
    err.textContent = j.error || '';
    err.hidden = !j.error;
    cancelBtn.hidden = !DF.isActive(j.state) || !!j.cancel_requested;
    const noResults = j.state === 'queued' || (j.pages_done || 0) === 0;
    DF.$('#dl-jsonl').hidden = noResults;
    DF.$('#dl-csv').hidden = noResults;
    head.removeAttribute('aria-busy');
  }

  async function refreshJob() {
    const before = job ? job.state : null;
    const j = await DF.api('GET', base);
    renderJob(j);
    if (before && before !== j.state) DF.announce('The job is ' + j.state + '.');
    if (j.pages_done !== shownDone && !loadingPages) await loadPages();
    return DF.isActive(j.state);
  }

  // ---- pages ---------------------------------------------------------------

  async function loadPages(scroll) {
    loadingPages = true;
    const doneNow = job ? job.pages_done : 0;
    try {
      const q = '?from=' + from + '&limit=' + PAGE_SIZE + '&filter=' + filter;
      const data = await DF.api('GET', base + '/pages' + q);
      shownDone = doneNow;
      renderPages(data);
      if (scroll) DF.$('#pages-card').scrollIntoView({block: 'start'});
    } catch (err) {
      if (err instanceof DF.ApiError && err.status === 404 && job && DF.isActive(job.state)) {
        pagesStatus.textContent = 'Pages appear here as soon as they are read.';
        pagesStatus.hidden = false;
      } else {
        DF.showError(err);
      }
    } finally {
      loadingPages = false;
    }
  }

  function renderPages(data) {
    const pages = data.pages || [];
    const total = data.total || 0;
    list.replaceChildren();
    if (!pages.length) {
      pagesStatus.hidden = false;
      if (job && DF.isActive(job.state) && filter === 'all') {
        pagesStatus.textContent = 'Pages appear here as soon as they are read.';
      } else if (filter === 'failed') {
        pagesStatus.textContent = 'No failed pages: every page could be read.';
      } else if (filter === 'low') {
        pagesStatus.textContent = 'No page has a low-confidence string.';
      } else {
        pagesStatus.textContent = 'This job has no pages.';
      }
    } else {
      pagesStatus.hidden = true;
    }
    // A page already shown keeps its element (and its loaded overlay) across refreshes.
    const fresh = new Map();
    for (const p of pages) {
      const sig = p.key + '|' + p.failed + '|' + p.strings + '|' + p.low_confidence;
      const node = rendered.get(sig) || renderPage(p);
      fresh.set(sig, node);
      list.append(node);
    }
    rendered = fresh;
    pager.hidden = total <= PAGE_SIZE && from === 0;
    const last = Math.min(from + pages.length, total);
    DF.$('#pager-text').textContent = total
      ? 'Pages ' + DF.int(from + 1) + '–' + DF.int(last) + ' of ' + DF.int(total)
      : '';
    DF.$('#prev-page').disabled = from === 0;
    DF.$('#next-page').disabled = last >= total;
  }

  // ---- the overlay viewer: a page's overlay over this page, not a bare PNG in a tab ----
  // Click (or Enter on) a thumbnail to open it; click the image to see it at full size
  // and back; arrows go to the previous and next page listed; Esc or Close ends it.
  const viewer = DF.$('#viewer');
  const viewerImg = DF.$('#viewer-img');
  const viewerBody = DF.$('#viewer-body');
  // The page shown, by its overlay's address: the list is redrawn while a job runs, so an
  // index into it would drift.
  let viewing = null;
  function overlayLinks() {
    return Array.from(list.querySelectorAll('a.overlay-link'));
  }
  function viewingIndex() {
    return overlayLinks().findIndex((a) => a.href === viewing);
  }
  function showOverlay(index) {
    const links = overlayLinks();
    if (index < 0 || index >= links.length) return;
    const link = links[index];
    viewing = link.href;
    viewerImg.src = link.href;
    viewerImg.alt = link.querySelector('img').alt;
    viewerBody.classList.remove('zoomed');
    DF.$('#viewer-title').textContent = link.dataset.label;
    DF.$('#viewer-open').href = link.href;
    DF.$('#viewer-prev').disabled = index === 0;
    DF.$('#viewer-next').disabled = index === links.length - 1;
    if (!viewer.open) viewer.showModal();
  }
  list.addEventListener('click', (e) => {
    const link = e.target.closest('a.overlay-link');
    if (!link || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    showOverlay(overlayLinks().indexOf(link));
  });
  viewerImg.addEventListener('click', () => viewerBody.classList.toggle('zoomed'));
  DF.$('#viewer-prev').addEventListener('click', () => showOverlay(viewingIndex() - 1));
  DF.$('#viewer-next').addEventListener('click', () => showOverlay(viewingIndex() + 1));
  DF.$('#viewer-close').addEventListener('click', () => viewer.close());
  // On the document: a disabled button or the image clicked to zoom leaves the focus
  // outside the dialog. Zoomed in, the arrows scroll the page instead.
  document.addEventListener('keydown', (e) => {
    if (!viewer.open || viewerBody.classList.contains('zoomed')) return;
    if (e.key === 'ArrowLeft') showOverlay(viewingIndex() - 1);
    else if (e.key === 'ArrowRight') showOverlay(viewingIndex() + 1);
    else return;
    e.preventDefault();
  });
  // A click on the backdrop (outside the dialog's box) closes it too.
  viewer.addEventListener('click', (e) => {
    if (e.target === viewer) viewer.close();
  });
  viewer.addEventListener('close', () => {
    viewerImg.removeAttribute('src');
    const link = overlayLinks()[viewingIndex()];
    if (link) link.focus();
  });

  function pageLabel(p) {
    const r = p.result || {};
    let label = r.page || p.key;
    if (r.page_index > 0) label += ' · page ' + (r.page_index + 1);
    return label;
  }

  function renderPage(p) {
    const r = p.result || {};
    const label = pageLabel(p);
    const overlayUrl = base + '/overlay?page=' + encodeURIComponent(p.key);
    let picture;
    if (p.failed) {
      picture = DF.el('div', {class: 'overlay-link empty-overlay'});
    } else {
      picture = DF.el(
        'a',
        {class: 'overlay-link', href: overlayUrl, title: 'Open the overlay', 'data-label': label},
        DF.el('img', {
          src: overlayUrl,
          loading: 'lazy',
          decoding: 'async',
          alt: 'Page ' + label + ' with the strings found outlined',
          width: r.width || null,
          height: r.height || null,
        }),
      );
    }

    const keyRow = DF.el(
      'div',
      {class: 'page-key'},
      DF.el('span', {class: 'mono'}, label),
      p.failed
        ? DF.el('span', {class: 'badge badge-bad'}, 'failed')
        : DF.el('span', {class: 'muted small'}, DF.int(p.strings) + (p.strings === 1 ? ' string' : ' strings')),
      p.low_confidence > 0 ? DF.el('span', {class: 'badge badge-warn'}, DF.int(p.low_confidence) + ' low confidence') : null,
    );

    const info = DF.el('div', {class: 'page-info'}, keyRow);
    if (p.failed) {
      info.append(DF.el('div', {class: 'notice notice-bad'}, r.error || 'This page could not be read.'));
    } else {
      info.append(stringsTable(r));
    }
    return DF.el('li', {class: 'page-item'}, picture, info);
  }

  function sameBox(a, b) {
    return Array.isArray(a) && Array.isArray(b) && a.length === 4 && a.every((v, i) => v === b[i]);
  }

  function digitsOf(s) {
    const digits = s.digits || [];
    if (!digits.length) return DF.el('span', {class: 'digits'}, DF.el('span', null, s.text));
    // text may hold a decimal point (amounts) that is not a digit of its own
    const out = DF.el('span', {class: 'digits', 'aria-label': s.text});
    let di = 0;
    for (const ch of String(s.text)) {
      if (/[0-9]/.test(ch) && di < digits.length) {
        const d = digits[di++];
        out.append(
          DF.el('span', {class: DF.confClass(d.confidence), title: 'digit ' + ch + ': ' + DF.confText(d.confidence)}, ch),
        );
      } else {
        out.append(DF.el('span', {'aria-hidden': 'true'}, ch));
      }
    }
    return out;
  }

  function stringsTable(r) {
    const strings = r.strings || [];
    const fields = r.fields || [];
    if (!strings.length && !fields.length) {
      return DF.el('p', {class: 'muted'}, 'No handwritten digit strings were found on this page.');
    }
    const hasFields = fields.length > 0;
    const tbody = DF.el('tbody');
    strings.forEach((s, i) => {
      const field = fields.find((f) => f.found !== false && sameBox(f.box, s.box));
      let fieldCell = null;
      if (hasFields) {
        fieldCell = DF.el('td', {class: 'cell-field'});
        if (field) {
          DF.append(fieldCell, [
            DF.el('span', null, field.name + ' '),
            // A corrected field passes only with digits the model thought less likely: its
            // badge, in the colour of "check it", says so instead of a tick.
            field.valid === undefined || (field.valid && field.corrected)
              ? null
              : DF.el(
                  'span',
                  {
                    class: field.valid ? 'valid-yes' : 'valid-no',
                    title: field.rule ? (field.valid ? 'passes the ' : 'fails the ') + field.rule + ' rule' : null,
                  },
                  field.valid ? '✓' : '✗ fails ' + (field.rule || 'its rule'),
                ),
            field.corrected
              ? [
                  ' ',
                  DF.el(
                    'span',
                    {
                      class: 'badge badge-warn badge-plain',
                      title:
                        'read as ' + s.text + ', changed to the model’s next guesses to pass the ' + (field.rule || '') +
                        ' rule: check it',
                    },
                    'corrected from ' + s.text,
                  ),
                ]
              : null,
          ]);
        } else {
          fieldCell.append(DF.el('span', {class: 'muted'}, '–'));
        }
      }
      tbody.append(
        DF.el(
          'tr',
          null,
          DF.el('td', {class: 'muted col-idx'}, String(i + 1)),
          fieldCell,
          DF.el('td', {class: 'cell-read'}, digitsOf(field && field.text ? {...s, text: field.text} : s)),
          // A field's row shows the field: its text (corrected where a rule asked) and its
          // confidence, not the string's as read (0 where the rule corrected or refused it).
          DF.el('td', {class: 'num'}, DF.confChip(field && field.confidence !== undefined ? field.confidence : s.confidence)),
        ),
      );
    });
    for (const f of fields) {
      if (f.found !== false) continue;
      tbody.append(
        DF.el(
          'tr',
          null,
          DF.el('td', {class: 'muted col-idx'}, '–'),
          DF.el('td', {class: 'cell-field'}, f.name),
          DF.el('td', {class: 'muted'}, 'not found'),
          DF.el('td', {class: 'num'}, ''),
        ),
      );
    }
    return DF.el(
      'div',
      {class: 'table-wrap'},
      DF.el(
        'table',
        {class: 'strings-table'},
        DF.el(
          'thead',
          null,
          DF.el(
            'tr',
            null,
            DF.el('th', {scope: 'col', class: 'col-idx'}, '#'),
            hasFields ? DF.el('th', {scope: 'col', class: 'col-field'}, 'Field') : null,
            DF.el('th', {scope: 'col'}, 'Read'),
            DF.el('th', {scope: 'col', class: 'num col-conf'}, 'Confidence'),
          ),
        ),
        tbody,
      ),
    );
  }

  let active;
  try {
    active = await refreshJob();
  } catch (err) {
    if (err instanceof DF.ApiError && (err.status === 404 || err.status === 400)) {
      head.hidden = true;
      DF.$('#pages-card').hidden = true;
      DF.$('#job-missing').hidden = false;
      document.title = 'No such job · digitflow';
      return;
    }
    throw err;
  }
  if (active) DF.poll(refreshJob, 2000);
});
