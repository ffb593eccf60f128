// Submit page: a folder (webkitdirectory), several files or one zip, picked or dropped;
// a template from GET /api/v1/templates or one the folder brings (a YAML file among its
// files, sent as template_file); the upload shows its progress (XMLHttpRequest)
// and a 201 goes straight to the new job's page.
'use strict';

DF.start(async () => {
  const form = DF.$('#submit-form');
  const errorBox = DF.$('#form-error');
  const drop = DF.$('#dropzone');
  const inputs = {folder: DF.$('#input-folder'), files: DF.$('#input-files'), zip: DF.$('#input-zip')};
  const summary = DF.$('#file-summary');
  const list = DF.$('#file-list');
  const count = DF.$('#file-count');
  const startBtn = DF.$('#start-job');
  const hint = DF.$('#submit-hint');
  const status = DF.$('#upload-status');
  const bar = DF.$('#upload-bar');
  const uploadText = DF.$('#upload-text');
  const uploadPct = DF.$('#upload-pct');
  const cancelBtn = DF.$('#cancel-upload');
  const nameInput = DF.$('#name');

  // {kind: 'files' | 'zip', items: [{file, path}], suggestedName}
  let selection = null;

  DF.$('#pick-folder').addEventListener('click', () => inputs.folder.click());
  DF.$('#pick-files').addEventListener('click', () => inputs.files.click());
  DF.$('#pick-zip').addEventListener('click', () => inputs.zip.click());

  inputs.folder.addEventListener('change', () => {
    const files = Array.from(inputs.folder.files);
    if (!files.length) return;
    const top = (files[0].webkitRelativePath || '').split('/')[0];
    choose(
      'files',
      files.map((f) => ({file: f, path: f.webkitRelativePath || f.name})),
      top,
    );
    inputs.folder.value = '';
  });
  inputs.files.addEventListener('change', () => {
    const files = Array.from(inputs.files.files);
    if (!files.length) return;
    fromFiles(files.map((f) => ({file: f, path: f.name})));
    inputs.files.value = '';
  });
  inputs.zip.addEventListener('change', () => {
    const f = inputs.zip.files[0];
    if (!f) return;
    choose('zip', [{file: f, path: f.name}], f.name.replace(/\.zip$/i, ''));
    inputs.zip.value = '';
  });
  DF.$('#clear-files').addEventListener('click', () => choose(null));

  // One zip among the files is sent as the job's zip.
  function fromFiles(items, folderName) {
    if (items.length === 1 && /\.zip$/i.test(items[0].path)) {
      choose('zip', items, items[0].file.name.replace(/\.zip$/i, ''));
    } else {
      choose('files', items, folderName || '');
    }
  }

  // ---- drag and drop (folders too, through the entries API) ---------------
  ['dragenter', 'dragover'].forEach((type) =>
    drop.addEventListener(type, (e) => {
      e.preventDefault();
      drop.classList.add('dragover');
    }),
  );
  ['dragleave', 'dragend'].forEach((type) =>
    drop.addEventListener(type, (e) => {
      if (e.target === drop) drop.classList.remove('dragover');
    }),
  );
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    drop.classList.remove('dragover');
    const dt = e.dataTransfer;
    try {
      const entries = Array.from(dt.items || [])
        .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
        .filter(Boolean);
      if (entries.length) {
        const items = [];
        for (const entry of entries) await walk(entry, items);
        const folder = entries.length === 1 && entries[0].isDirectory ? entries[0].name : '';
        fromFiles(items, folder);
      } else {
        fromFiles(Array.from(dt.files).map((f) => ({file: f, path: f.name})));
      }
    } catch (err) {
      DF.formError(errorBox, new Error('The dropped items could not be read: ' + DF.errorText(err)));
    }
  });
  // Stray drops elsewhere on the page must not open the file in the tab.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());

  async function walk(entry, out) {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({file, path: entry.fullPath.replace(/^\/+/, '')});
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const child of batch) await walk(child, out);
      }
    }
  }

  // ---- selection ---------------------------------------------------------
  function choose(kind, items, suggestedName) {
    DF.formError(errorBox, null);
    selection = kind ? {kind, items, suggestedName: suggestedName || ''} : null;
    DF.clear(list);
    if (!selection || !items.length) {
      selection = null;
      summary.hidden = true;
      startBtn.disabled = false;
      hint.textContent = 'Choose some pages first.';
      nameInput.placeholder = 'e.g. Checks ' + new Date().toISOString().slice(0, 10);
      offerFolderTemplates([]);
      return;
    }
    const total = items.reduce((s, it) => s + it.file.size, 0);
    if (kind === 'zip') {
      // The zip's own list of files, read from its end (the central directory): its pages
      // counted and its templates offered as a folder's are.
      const zip = items[0].file;
      show([{path: items[0].path, size: zip.size}], 'One zip, ' + DF.bytes(total), false);
      offerFolderTemplates([]);
      const chosenThen = select.value;
      zipEntries(zip).then((entries) => {
        if (!entries || !selection || selection.items[0].file !== zip) return;  // unreadable, or another choice since
        show(entries, 'One zip, ' + DF.bytes(total) + ': ' + describe(entries), true);
        // A template the user picked while the zip was read stays picked.
        offerFolderTemplates(
          entries.filter((e) => e.plain && /\.ya?ml$/i.test(e.path)),
          'From this zip',
          select.value === chosenThen,
        );
      });
    } else {
      const entries = items.map((it) => ({path: it.path, size: it.file.size, file: it.file}));
      show(entries, describe(entries) + ', ' + DF.bytes(total), true);
      offerFolderTemplates(entries.filter((e) => /\.ya?ml$/i.test(e.path)));
    }
    summary.hidden = false;
    hint.textContent = '';
    if (selection.suggestedName) nameInput.placeholder = selection.suggestedName;
  }

  // "12 files (10 pages)": pages are every file but those surely none (a file of another
  // name is still read when its bytes are an image, and named in the results when not).
  function describe(entries) {
    const pages = entries.filter((e) => !NOT_PAGE.test(e.path)).length;
    const files = DF.int(entries.length) + (entries.length === 1 ? ' file' : ' files');
    return pages === entries.length ? files : files + ' (' + DF.int(pages) + (pages === 1 ? ' page)' : ' pages)');
  }

  // The list: files that are no pages first (they stand out), then the pages in the order
  // the job reads them; `classify` marks the ones skipped.
  function show(entries, heading, classify) {
    DF.clear(list);
    count.textContent = heading;
    const rank = (e) => (classify && NOT_PAGE.test(e.path) ? 0 : 1);
    const sorted = entries.slice().sort((a, b) => rank(a) - rank(b) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const shown = sorted.slice(0, 200);
    for (const e of shown) {
      const skipped = classify && NOT_PAGE.test(e.path);
      list.append(
        DF.el(
          'li',
          skipped ? {class: 'not-page', 'data-path': e.path} : null,
          DF.el('span', {class: 'path'}, e.path),
          DF.el(
            'span',
            {class: 'muted nowrap'},
            skipped ? DF.el('span', {class: 'note', title: 'Not a page: not read'}, 'skipped') : null,
            skipped ? ' · ' : null,
            DF.bytes(e.size),
          ),
        ),
      );
    }
    if (sorted.length > shown.length) {
      list.append(DF.el('li', {class: 'muted'}, 'and ' + DF.int(sorted.length - shown.length) + ' more'));
    }
    markTemplateRow();
  }

  // The files a zip holds, [{path, size}], from its central directory; null when it cannot
  // be read that way (not a zip, a zip64) - the server then says what is wrong, if anything.
  async function zipEntries(file) {
    try {
      const tailSize = Math.min(file.size, 65536 + 22);
      const tail = new DataView(await file.slice(file.size - tailSize).arrayBuffer());
      let end = -1;
      for (let i = tail.byteLength - 22; i >= 0 && end < 0; i--) if (tail.getUint32(i, true) === 0x06054b50) end = i;
      if (end < 0) return null;
      const total = tail.getUint16(end + 10, true);
      const size = tail.getUint32(end + 12, true);
      const offset = tail.getUint32(end + 16, true);
      // The directory ends where its end record starts (a zip64, or a crafted record, not).
      if (total === 0xffff || offset === 0xffffffff || offset + size !== file.size - tailSize + end) return null;
      const dir = new DataView(await file.slice(offset, offset + size).arrayBuffer());
      const utf8 = new TextDecoder();
      const entries = [];
      for (let at = 0, n = 0; n < total; n++) {
        if (at + 46 > dir.byteLength || dir.getUint32(at, true) !== 0x02014b50) return null;
        const nameLength = dir.getUint16(at + 28, true);
        const skip = nameLength + dir.getUint16(at + 30, true) + dir.getUint16(at + 32, true);
        if (at + 46 + nameLength > dir.byteLength) return null;
        const bytes = new Uint8Array(dir.buffer, dir.byteOffset + at + 46, nameLength);
        const path = utf8.decode(bytes);
        // A name not flagged UTF-8 with bytes past ASCII is another code page on the server:
        // listed, but not offered by a name that would not match.
        const plain = (dir.getUint16(at + 8, true) & 0x0800) !== 0 || bytes.every((b) => b < 0x80);
        if (!path.endsWith('/')) entries.push({path, size: dir.getUint32(at + 24, true), plain});
        at += 46 + skip;
      }
      return entries;
    } catch (err) {
      return null;
    }
  }

  // ---- templates -----------------------------------------------------------
  const select = DF.$('#template');
  const templateHint = DF.$('#template-hint');
  const hintText = templateHint.textContent;
  // Names that are surely no page (text, settings, office files).
  const NOT_PAGE = /\.(ya?ml|jsonl?|csv|txt|md|xml|html?|log|ini|docx?|xlsx?|odt|ods)$/i;
  let folderGroup = null;
  let chosenBefore = '';
  // A folder that brings its own template (a template.yaml beside its pages) offers it, and
  // it is chosen: the fields of its own form are what its pages hold.
  function offerFolderTemplates(yamls, label = 'From this folder', choose = true) {
    if (folderGroup) {
      if (select.value.startsWith('file:')) select.value = chosenBefore;
      folderGroup.remove();
      folderGroup = null;
      templateHint.textContent = hintText;
    }
    if (!yamls.length) return;
    chosenBefore = select.value;
    folderGroup = DF.el('optgroup', {label});
    const depth = (it) => it.path.split('/').length;
    const byDepth = yamls.slice().sort((a, b) => depth(a) - depth(b) || a.path.localeCompare(b.path));
    let preferred = null;
    for (const it of byDepth) {
      const option = DF.el('option', {value: 'file:' + it.path}, it.path);
      folderGroup.append(option);
      if (!preferred && /(^|\/)template\.ya?ml$/i.test(it.path)) preferred = option;
      // Its title, when it states one (the YAML key "name" at the top level); a zip's
      // files are not unpacked here.
      if (!it.file) continue;
      it.file
        .slice(0, 64 * 1024)
        .text()
        .then((text) => {
          const m = /^name:[ \t]*["']?([^"'\r\n#]*)/m.exec(text);
          if (m && m[1].trim()) option.textContent = m[1].trim() + ' — ' + it.path;
        })
        .catch(() => {});
    }
    select.append(folderGroup);
    markTemplateRow();
    if (preferred && choose) {
      select.value = preferred.value;
      markTemplateRow();
      templateHint.textContent =
        'This ' + (label === 'From this zip' ? 'zip' : 'folder') + ' holds its own template, ' + preferred.value.slice(5) +
        ', and it is chosen. ' + hintText;
    }
  }

  // The folder's file that is the chosen template says so in the list.
  function markTemplateRow() {
    const chosen = select.value.startsWith('file:') ? select.value.slice(5) : null;
    for (const row of list.querySelectorAll('li.not-page')) {
      const note = row.querySelector('.note');
      const isTemplate = row.dataset.path === chosen;
      note.textContent = isTemplate ? 'the template' : 'skipped';
      note.title = isTemplate ? 'Read as the job’s template, not as a page' : 'Not a page: not read';
    }
  }
  select.addEventListener('change', markTemplateRow);

  choose(null);

  try {
    const data = await DF.api('GET', '/api/v1/templates');
    for (const t of data.templates || []) {
      const fields = (t.fields || []).map((f) => f.name).join(', ');
      const option = DF.el('option', {value: t.name}, (t.title || t.name) + (fields ? ' — ' + fields : ''));
      if (folderGroup) select.insertBefore(option, folderGroup);
      else select.append(option);
    }
  } catch (err) {
    DF.showError(err);
  }

  // ---- upload --------------------------------------------------------------
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    DF.formError(errorBox, null);
    if (!selection) {
      DF.formError(errorBox, new Error('Choose a folder, some files or a zip to upload first.'));
      DF.$('#pick-folder').focus();
      return;
    }
    const fd = new FormData();
    const name =
      nameInput.value.trim() || selection.suggestedName || 'Scans ' + new Date().toISOString().slice(0, 16).replace('T', ' ');
    fd.append('name', name);
    const template = select.value;
    if (template.startsWith('file:')) fd.append('template_file', template.slice(5));
    else fd.append('template', template);
    if (selection.kind === 'zip') {
      fd.append('zip', selection.items[0].file, selection.items[0].file.name);
    } else {
      for (const it of selection.items) fd.append('files', it.file, it.path);
    }

    status.hidden = false;
    bar.max = 1;
    bar.value = 0;
    uploadText.textContent = 'Uploading…';
    uploadPct.textContent = '';
    cancelBtn.hidden = false;
    const onCancel = () => DF.currentUpload && DF.currentUpload.abort();
    cancelBtn.addEventListener('click', onCancel, {once: true});
    startBtn.disabled = true;
    try {
      const res = await DF.upload('/api/v1/jobs', fd, (loaded, total) => {
        if (total > 0) {
          bar.max = total;
          bar.value = loaded;
          uploadText.textContent = DF.bytes(loaded) + ' of ' + DF.bytes(total);
          uploadPct.textContent = Math.floor((100 * loaded) / total) + '%';
          if (loaded >= total) uploadText.textContent = 'Uploaded; queueing the job…';
        }
      });
      uploadText.textContent = 'Job queued. Opening it…';
      DF.announce('Job queued.');
      location.assign('/jobs/' + encodeURIComponent(res.body.id));
    } catch (err) {
      status.hidden = true;
      let message = DF.errorText(err);
      if (err instanceof DF.ApiError && err.status === 413) {
        message = 'Too large for one job. ' + DF.sentence(message) + ' Split the pages into several jobs, or ask an administrator about the limits.';
      }
      DF.formError(errorBox, new Error(message));
      errorBox.scrollIntoView({block: 'center'});
    } finally {
      cancelBtn.hidden = true;
      cancelBtn.removeEventListener('click', onCancel);
      startBtn.disabled = false;
    }
  });
});
