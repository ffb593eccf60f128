// Model page: MNIST test accuracy, the confusion matrix as an SVG heat map, training
// curves as SVG line charts, the versions table; for admins the Retrain button.
'use strict';

DF.start(async (user) => {
  let lastModel = null;

  // ---- charts ----------------------------------------------------------------

  function niceStep(range, count) {
    const raw = range / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const norm = raw / mag;
    const step = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
    return step * mag;
  }

  // series: [{name, cls, points: [[x, y], ...]}]; opts: {xTitle, yTitle, yMin, yMax, yFormat}
  function lineChart(title, series, opts) {
    const W = 520;
    const H = 280;
    const m = {l: 58, r: 16, t: 14, b: 46};
    const pts = series.flatMap((s) => s.points);
    const svg = DF.svg('svg', {
      class: 'chart',
      viewBox: `0 0 ${W} ${H}`,
      role: 'img',
      'aria-label': title,
    });
    svg.append(DF.svg('title', null, title));
    if (!pts.length) {
      svg.append(DF.svg('text', {x: W / 2, y: H / 2, 'text-anchor': 'middle'}, 'No training curve recorded'));
      return svg;
    }
    const xs = pts.map((p) => p[0]);
    const ys = pts.map((p) => p[1]);
    const x0 = Math.min(...xs);
    const x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
    let y0 = opts.yMin !== undefined ? opts.yMin : Math.min(...ys);
    let y1 = opts.yMax !== undefined ? opts.yMax : Math.max(...ys);
    if (y1 === y0) y1 = y0 + 1;
    const ystep = niceStep(y1 - y0, 5);
    y0 = Math.floor(y0 / ystep) * ystep;
    y1 = Math.ceil(y1 / ystep - 1e-9) * ystep;
    const px = (x) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
    const py = (y) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
    const fmt = opts.yFormat || ((v) => String(+v.toFixed(3)));

    for (let y = y0; y <= y1 + ystep / 2; y += ystep) {
      svg.append(
        DF.svg('line', {class: 'grid-line', x1: m.l, x2: W - m.r, y1: py(y), y2: py(y)}),
        DF.svg('text', {x: m.l - 8, y: py(y) + 4, 'text-anchor': 'end'}, fmt(y)),
      );
    }
    const xstep = Math.max(1, Math.ceil((x1 - x0) / 10));
    for (let x = x0; x <= x1; x += xstep) {
      svg.append(DF.svg('text', {x: px(x), y: H - m.b + 17, 'text-anchor': 'middle'}, String(x)));
    }
    svg.append(
      DF.svg('line', {class: 'axis-line', x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b}),
      DF.svg('line', {class: 'axis-line', x1: m.l, x2: m.l, y1: m.t, y2: H - m.b}),
      DF.svg('text', {class: 'axis-title', x: (m.l + W - m.r) / 2, y: H - 8, 'text-anchor': 'middle'}, opts.xTitle),
      DF.svg(
        'text',
        {class: 'axis-title', x: 0, y: 0, 'text-anchor': 'middle', transform: `translate(14 ${(m.t + H - m.b) / 2}) rotate(-90)`},
        opts.yTitle,
      ),
    );
    for (const s of series) {
      if (!s.points.length) continue;
      const d = s.points.map((p, i) => (i ? 'L' : 'M') + px(p[0]).toFixed(1) + ' ' + py(p[1]).toFixed(1)).join(' ');
      svg.append(DF.svg('path', {class: 'line ' + s.cls, d}));
      for (const p of s.points) {
        svg.append(
          DF.svg(
            'circle',
            {class: s.cls, cx: px(p[0]).toFixed(1), cy: py(p[1]).toFixed(1), r: 3},
            DF.svg('title', null, `${s.name}, epoch ${p[0]}: ${fmt(p[1])}`),
          ),
        );
      }
    }
    return svg;
  }

  // Class 10 is "not a digit": its column counts digits the model rejected.
  const classLabel = (k) => (k === 10 ? 'x' : String(k));
  const className = (k) => (k === 10 ? 'not a digit' : String(k));

  function confusionChart(matrix) {
    const n = matrix.length; // columns: every class the model has
    const rows = matrix.map((row, i) => i).filter((i) => matrix[i].reduce((a, b) => a + b, 0) > 0);
    const cell = 38;
    const m = {l: 52, t: 46, r: 6, b: 6};
    const W = m.l + n * cell + m.r;
    const H = m.t + rows.length * cell + m.b;
    const svg = DF.svg('svg', {
      class: 'chart',
      viewBox: `0 0 ${W} ${H}`,
      role: 'img',
      'aria-label': 'Confusion matrix on MNIST test: rows are the true digit, columns the digit read',
    });
    let maxOff = 0;
    matrix.forEach((row, i) => row.forEach((v, j) => i !== j && (maxOff = Math.max(maxOff, v))));
    svg.append(
      DF.svg('text', {class: 'axis-title', x: m.l + (n * cell) / 2, y: 14, 'text-anchor': 'middle'}, 'Predicted digit'),
      DF.svg(
        'text',
        {class: 'axis-title', x: 0, y: 0, 'text-anchor': 'middle', transform: `translate(14 ${m.t + (rows.length * cell) / 2}) rotate(-90)`},
        'True digit',
      ),
    );
    for (let k = 0; k < n; k++) {
      svg.append(
        DF.svg(
          'text',
          {x: m.l + k * cell + cell / 2, y: m.t - 8, 'text-anchor': 'middle'},
          classLabel(k),
          DF.svg('title', null, className(k)),
        ),
      );
    }
    rows.forEach((i, r) => {
      svg.append(DF.svg('text', {x: m.l - 8, y: m.t + r * cell + cell / 2 + 4, 'text-anchor': 'end'}, classLabel(i)));
    });
    rows.forEach((i, r) => {
      const row = matrix[i];
      const total = row.reduce((a, b) => a + b, 0) || 1;
      row.forEach((v, j) => {
        const x = m.l + j * cell;
        const y = m.t + r * cell;
        let cls = 'cell-empty';
        let opacity = 1;
        if (i === j) {
          cls = 'cell-diag';
          opacity = 0.35 + 0.65 * (v / total);
        } else if (v > 0) {
          cls = 'cell-off';
          opacity = 0.12 + 0.88 * Math.sqrt(v / (maxOff || 1));
        }
        const rect = DF.svg(
          'rect',
          {class: cls, x: x + 1, y: y + 1, width: cell - 2, height: cell - 2, rx: 3, 'fill-opacity': opacity.toFixed(2)},
          DF.svg('title', null, `true ${i}, read ${className(j)}: ${v} (${DF.pct(v / total, 2)} of the ${i}s)`),
        );
        svg.append(rect);
        if (v > 0) {
          svg.append(
            DF.svg(
              'text',
              {class: 'cell-text' + (opacity > 0.55 ? ' cell-text-strong' : ''), x: x + cell / 2, y: y + cell / 2},
              String(v),
            ),
          );
        }
      });
    });
    return svg;
  }

  function perClassTable(perClass, matrix) {
    const tbody = DF.el('tbody');
    for (let d = 0; d < perClass.length; d++) {
      if (matrix && matrix[d] && matrix[d].reduce((a, b) => a + b, 0) === 0) continue;
      let errors = null;
      let worst = null;
      if (matrix && matrix[d]) {
        const row = matrix[d];
        errors = row.reduce((a, b) => a + b, 0) - row[d];
        let best = 0;
        row.forEach((v, j) => {
          if (j !== d && v > best) {
            best = v;
            worst = j;
          }
        });
      }
      tbody.append(
        DF.el(
          'tr',
          null,
          DF.el('td', {'data-label': 'Digit', class: 'mono'}, String(d)),
          // An accuracy, not a confidence: plain, not in the confidence colours.
          DF.el('td', {'data-label': 'Accuracy', class: 'num'}, DF.pct(perClass[d], 2)),
          DF.el('td', {'data-label': 'Errors', class: 'num'}, errors === null ? '–' : DF.int(errors)),
          DF.el('td', {'data-label': 'Most often read as', class: 'num'}, worst === null ? '–' : className(worst)),
        ),
      );
    }
    return DF.el(
      'div',
      {class: 'table-wrap'},
      DF.el(
        'table',
        {class: 'per-class'},
        DF.el(
          'thead',
          null,
          DF.el(
            'tr',
            null,
            DF.el('th', {scope: 'col'}, 'Digit'),
            DF.el('th', {scope: 'col', class: 'num'}, 'Accuracy'),
            DF.el('th', {scope: 'col', class: 'num'}, 'Errors'),
            DF.el('th', {scope: 'col', class: 'num'}, 'Often read as'),
          ),
        ),
        tbody,
      ),
    );
  }

  // ---- render ----------------------------------------------------------------

  // A version's figures: top-level keys, else the metrics its retraining recorded.
  const mnistOf = (v) => v.mnist_accuracy ?? v.metrics?.test_accuracy ?? null;
  function heldOutOf(v) {
    if (v.review_accuracy !== undefined) return v.review_accuracy;
    const h = v.metrics?.retrain?.held_out_samples;
    if (!h || !h.count) return null;
    return typeof h.new === 'object' ? h.new?.accuracy ?? null : h.new ?? null;
  }

  function versionStatus(v) {
    const status = v.status || (v.default ? 'ready' : '');
    const cls =
      {ready: 'badge-ok', promoted: 'badge-ok', training: 'state-running', running: 'state-running', queued: '', failed: 'badge-bad', rejected: 'badge-warn', kept: 'badge-warn'}[status] ?? '';
    return DF.el('span', {class: 'badge ' + cls}, status || 'unknown');
  }

  function render(data) {
    lastModel = data;
    const cur = data.current || {};
    DF.$('#model-path').textContent = cur.path ? 'In use: ' + cur.path : 'No model evaluation recorded yet.';
    DF.$('#st-acc').textContent = DF.pct(cur.mnist_accuracy, 2);
    const matrix = Array.isArray(cur.confusion) && cur.confusion.length ? cur.confusion : null;
    if (matrix) {
      const errors = matrix.reduce((s, row, i) => s + row.reduce((a, b) => a + b, 0) - row[i], 0);
      const total = matrix.reduce((s, row) => s + row.reduce((a, b) => a + b, 0), 0);
      DF.$('#st-errors').textContent = DF.int(errors);
      DF.$('#st-errors').append(DF.el('span', {class: 'unit'}, 'of ' + DF.int(total)));
    }
    const curve = cur.curve || [];
    DF.$('#st-epochs').textContent = curve.length ? DF.int(curve.length) : '–';
    DF.$('#st-samples').textContent = DF.int(data.samples);

    const conf = DF.clear(DF.$('#confusion'));
    conf.append(matrix ? confusionChart(matrix) : DF.el('p', {class: 'muted'}, 'No confusion matrix recorded for this model.'));
    DF.$('#legend-x').hidden = !matrix || matrix[0].length <= 10;

    const pc = DF.clear(DF.$('#per-class'));
    if (Array.isArray(cur.per_class) && cur.per_class.length) pc.append(perClassTable(cur.per_class, matrix));
    else pc.append(DF.el('p', {class: 'muted'}, 'No per-digit accuracy recorded.'));

    const pctFmt = (v) => (+(v * 100).toFixed(2)).toString() + '%';
    DF.clear(DF.$('#chart-loss')).append(
      lineChart('Training loss per epoch', [{name: 'loss', cls: 'series-1', points: curve.filter((c) => c.loss != null).map((c) => [c.epoch, c.loss])}], {
        xTitle: 'Epoch',
        yTitle: 'Loss',
        yMin: 0,
      }),
    );
    const acc = curve.filter((c) => c.accuracy > 0).map((c) => [c.epoch, c.accuracy]);
    const val = curve.filter((c) => c.val_accuracy > 0).map((c) => [c.epoch, c.val_accuracy]);
    DF.clear(DF.$('#chart-acc')).append(
      lineChart(
        'Accuracy per epoch',
        [
          {name: 'training', cls: 'series-1', points: acc},
          {name: 'validation', cls: 'series-2', points: val},
        ],
        {xTitle: 'Epoch', yTitle: 'Accuracy', yMax: 1, yFormat: pctFmt},
      ),
    );

    const body = DF.clear(DF.$('#versions-body'));
    const versions = data.versions || [];
    DF.$('#versions-empty').hidden = versions.length > 0;
    DF.$('#versions-table').hidden = versions.length === 0;
    for (const v of versions) {
      body.append(
        DF.el(
          'tr',
          null,
          DF.el(
            'td',
            {'data-label': 'Version', class: 'cell-main'},
            DF.el('strong', null, String(v.version ?? v.id)),
            v.default ? DF.el('span', null, ' ', DF.el('span', {class: 'badge badge-accent badge-plain'}, 'default')) : null,
          ),
          DF.el('td', {'data-label': 'Created', class: 'nowrap'}, DF.dateTime(v.created_ms)),
          DF.el('td', {'data-label': 'Status'}, versionStatus(v)),
          DF.el('td', {'data-label': 'MNIST test', class: 'num'}, DF.pct(mnistOf(v), 2)),
          DF.el('td', {'data-label': 'Reviewed held-out', class: 'num'}, DF.pct(heldOutOf(v), 1)),
          DF.el('td', {'data-label': 'Note', class: 'small'}, v.note || ''),
        ),
      );
    }
  }

  const load = async () => render(await DF.api('GET', '/api/v1/model'));
  await load();

  // ---- retrain (admins) -----------------------------------------------------

  if (user.role !== 'admin') return;
  const card = DF.$('#retrain-card');
  const btn = DF.$('#retrain');
  const outcome = DF.$('#retrain-outcome');
  card.hidden = false;
  if (lastModel && lastModel.samples === 0) {
    btn.disabled = true;
    DF.$('#retrain-text').textContent =
      'Fine-tunes the current model on reviewed digits plus MNIST. There are no reviewed digits yet: label some on the review page first.';
  } else if (lastModel && lastModel.samples !== undefined) {
    DF.$('#retrain-text').textContent =
      'Fine-tunes the current model on the ' + DF.int(lastModel.samples) + ' reviewed samples plus MNIST, in the background. ' +
      'The new version is evaluated on MNIST test and on a held-out share of the reviewed samples, and becomes the default only if it is not worse on MNIST.';
  }

  const showOutcome = (cls, text) => {
    DF.clear(outcome).append(DF.el('div', {class: 'notice ' + cls}, text));
  };

  const finished = (s) => s && !['queued', 'training', 'running', 'evaluating'].includes(s);

  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const res = await DF.api('POST', '/api/v1/retrain');
      const version = res.version && typeof res.version === 'object' ? res.version.id : res.version;
      showOutcome('', 'Retraining started as version ' + version + '. This can take a few minutes; this page follows it.');
      DF.poll(async () => {
        await load();
        const v = (lastModel.versions || []).find((x) => String(x.version ?? x.id) === String(version));
        if (!v || !finished(v.status)) return true;
        if (v.status === 'failed') {
          showOutcome('notice-bad', 'Version ' + version + ' failed: ' + (v.note || 'no reason given') + '.');
        } else if (v.default) {
          showOutcome('notice-ok', 'Version ' + version + ' is now the default. ' + (v.note || 'MNIST test ' + DF.pct(mnistOf(v), 2) + '.'));
        } else {
          showOutcome('notice-warn', 'Version ' + version + ' was kept but not promoted: ' + (v.note || 'it was worse on MNIST test') + '.');
        }
        btn.disabled = false;
        return false;
      }, 3000);
    } catch (err) {
      showOutcome('notice-bad', DF.errorText(err));
      btn.disabled = false;
    }
  });
});
