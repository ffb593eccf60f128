// Pad page: a canvas to write digits on (pointer events: mouse, pen, touch). 150 ms after
// each stroke the canvas is sent as PNG to POST /api/v1/recognize and the strings read,
// each digit's confidence and the round-trip time are shown. A photo goes the same way.
'use strict';

DF.start(async () => {
  const canvas = DF.$('#pad');
  const ctx = canvas.getContext('2d');
  const resultText = DF.$('#result-text');
  const boxes = DF.$('#digit-boxes');
  const timing = DF.$('#timing');
  const INK = '#000000';
  const PAPER = '#ffffff';
  const WIDTH = () => Math.max(10, canvas.width / 42); // thick strokes, like a felt pen

  let strokes = []; // each: array of [x, y] in canvas pixels
  let current = null;
  let photo = null; // ImageBitmap drawn under the strokes
  let timer = null;
  let inFlight = false;
  let dirty = false;
  let generation = 0; // bumps on clear, so late answers for old drawings are dropped

  function paper() {
    ctx.fillStyle = PAPER;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }

  function redraw() {
    paper();
    if (photo) {
      const s = Math.min(canvas.width / photo.width, canvas.height / photo.height);
      const w = photo.width * s;
      const h = photo.height * s;
      ctx.drawImage(photo, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
    }
    for (const s of strokes) drawStroke(s);
  }

  function drawStroke(points) {
    ctx.strokeStyle = INK;
    ctx.fillStyle = INK;
    ctx.lineWidth = WIDTH();
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    if (points.length === 1) {
      ctx.beginPath();
      ctx.arc(points[0][0], points[0][1], WIDTH() / 2, 0, Math.PI * 2);
      ctx.fill();
      return;
    }
    ctx.beginPath();
    ctx.moveTo(points[0][0], points[0][1]);
    for (let i = 1; i < points.length; i++) ctx.lineTo(points[i][0], points[i][1]);
    ctx.stroke();
  }

  function pos(e) {
    const r = canvas.getBoundingClientRect();
    return [((e.clientX - r.left) / r.width) * canvas.width, ((e.clientY - r.top) / r.height) * canvas.height];
  }

  canvas.addEventListener('pointerdown', (e) => {
    if (e.button !== 0 && e.pointerType === 'mouse') return;
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    current = [pos(e)];
    strokes.push(current);
    drawStroke(current);
    clearTimeout(timer);
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!current) return;
    e.preventDefault();
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    const before = current.length;
    for (const ev of events.length ? events : [e]) current.push(pos(ev));
    // draw only the new segment
    ctx.strokeStyle = INK;
    ctx.lineWidth = WIDTH();
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.beginPath();
    ctx.moveTo(current[before - 1][0], current[before - 1][1]);
    for (let i = before; i < current.length; i++) ctx.lineTo(current[i][0], current[i][1]);
    ctx.stroke();
  });
  const endStroke = (e) => {
    if (!current) return;
    current = null;
    if (canvas.hasPointerCapture && canvas.hasPointerCapture(e.pointerId)) canvas.releasePointerCapture(e.pointerId);
    schedule();
  };
  canvas.addEventListener('pointerup', endStroke);
  canvas.addEventListener('pointercancel', endStroke);

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(() => recognize(), 150);
  }

  DF.$('#clear').addEventListener('click', () => {
    strokes = [];
    photo = null;
    generation++;
    clearTimeout(timer);
    redraw();
    showEmpty();
    canvas.focus();
  });
  DF.$('#undo').addEventListener('click', () => {
    if (!strokes.length) return;
    strokes.pop();
    redraw();
    if (!strokes.length && !photo) {
      generation++;
      showEmpty();
    } else schedule();
  });
  canvas.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' || e.key === 'Delete' || e.key === 'Backspace') {
      e.preventDefault();
      DF.$('#clear').click();
    }
  });

  DF.$('#photo').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    e.target.value = '';
    if (!file) return;
    strokes = [];
    generation++;
    try {
      photo = await createImageBitmap(file);
    } catch (err) {
      photo = null;
    }
    redraw();
    await send(file, generation);
  });

  function showEmpty() {
    resultText.textContent = 'Nothing written yet.';
    resultText.classList.add('placeholder');
    DF.clear(boxes);
    timing.textContent = '';
  }

  // The canvas as a PNG. toDataURL rather than toBlob: Chromium may hold a toBlob
  // encoding back until the page is idle (a second and more), which the pad cannot afford.
  function toBlob() {
    const url = canvas.toDataURL('image/png');
    const bin = atob(url.slice(url.indexOf(',') + 1));
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Blob([bytes], {type: 'image/png'});
  }

  async function recognize() {
    if (!strokes.length && !photo) return;
    if (inFlight) {
      dirty = true; // send again once the answer for the older drawing is in
      return;
    }
    await send(toBlob(), generation, true);
  }

  // `drawn`: ink on the pad, with no form lines to take out (a 7's bar would look like one).
  async function send(blob, gen, drawn = false) {
    inFlight = true;
    dirty = false;
    const t0 = performance.now();
    try {
      let res = await DF.api('POST', drawn ? '/api/v1/recognize?drawn=1' : '/api/v1/recognize', blob);
      // A lone digit is no string to the string finder: read the drawing as one digit then.
      if (!res.error && !(res.strings || []).length) {
        const one = await DF.api('POST', '/api/v1/recognize?digits=1' + (drawn ? '&drawn=1' : ''), blob);
        if ((one.strings || []).length) res = {...one, ms: (res.ms || 0) + (one.ms || 0)};
      }
      const ms = performance.now() - t0;
      if (gen === generation) show(res, ms);
      DF.clearError();
    } catch (err) {
      DF.showError(err);
    } finally {
      inFlight = false;
      if (dirty) recognize();
    }
  }

  function show(res, ms) {
    const strings = res.strings || [];
    DF.clear(boxes);
    if (res.error) {
      resultText.textContent = res.error;
      resultText.classList.add('placeholder');
    } else if (!strings.length) {
      resultText.textContent = 'No digits found — try writing larger.';
      resultText.classList.add('placeholder');
    } else {
      resultText.textContent = strings.map((s) => s.text).join('  ');
      resultText.classList.remove('placeholder');
      resultText.classList.toggle('many', strings.length > 1);
      boxes.classList.toggle('many', strings.length > 1);
      // one group of digit boxes per string, headed by the string and its confidence
      for (const s of strings) {
        const list = DF.el('ul', {class: 'digit-boxes'});
        for (const d of s.digits || []) {
          list.append(
            DF.el(
              'li',
              {class: 'digit-box ' + DF.confClass(d.confidence)},
              DF.el('span', {class: 'd'}, String(d.digit)),
              DF.el('span', {class: 'p'}, DF.confText(d.confidence)),
            ),
          );
        }
        boxes.append(
          DF.el(
            'div',
            {class: 'digit-group'},
            strings.length > 1
              ? DF.el('p', {class: 'group-head'}, DF.el('span', {class: 'mono'}, s.text), ' ', DF.confChip(s.confidence))
              : null,
            list,
          ),
        );
      }
    }
    const parts = ['Round trip ' + Math.round(ms) + ' ms'];
    if (res.ms !== undefined) parts.push('server ' + DF.fixed(res.ms, 1) + ' ms');
    if (res.width) parts.push(res.width + ' × ' + res.height + ' px');
    if (strings.length === 1) parts.push('string confidence ' + DF.confText(strings[0].confidence));
    timing.textContent = parts.join(' · ');
  }

  // The drawing surface keeps the shape it is shown in (wider on a desk, taller on a
  // phone), so strokes stay round: the width is fixed, the height follows.
  function fit() {
    const r = canvas.getBoundingClientRect();
    if (!r.width) return;
    const h = Math.round((canvas.width * r.height) / r.width);
    if (h !== canvas.height) {
      canvas.height = h;
      redraw();
    }
  }
  window.addEventListener('resize', fit);
  fit();
  redraw();
  showEmpty();
});
