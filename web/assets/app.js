// digitflow web pages: what every page shares. The API wrapper (CSRF header from
// GET /api/v1/me, 401 -> /login, {"error"} text in a banner), the top navigation,
// small DOM and formatting helpers. Each page has its own script that calls DF.start.
'use strict';

(function () {
  const DF = {};
  window.DF = DF;

  let csrf = null;
  DF.user = null;

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.name = 'ApiError';
      this.status = status;
      this.body = body;
    }
  }
  DF.ApiError = ApiError;

  // ---- DOM helpers -------------------------------------------------------

  // DF.el('a', {href: '/x', class: 'btn', onclick: fn}, 'text', child, [more])
  DF.el = function (tag, attrs, ...children) {
    const node = document.createElement(tag);
    DF.setAttrs(node, attrs);
    DF.append(node, children);
    return node;
  };

  const SVG_NS = 'http://www.w3.org/2000/svg';
  DF.svg = function (tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    DF.setAttrs(node, attrs);
    DF.append(node, children);
    return node;
  };

  DF.setAttrs = function (node, attrs) {
    if (!attrs) return;
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        node.addEventListener(key.slice(2), value);
      } else if (key === 'text') {
        node.textContent = String(value);
      } else if (key === 'dataset') {
        Object.assign(node.dataset, value);
      } else if (value === true) {
        node.setAttribute(key, '');
      } else {
        node.setAttribute(key, String(value));
      }
    }
  };

  DF.append = function (node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  };

  DF.clear = function (node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  };

  DF.$ = (sel, root) => (root || document).querySelector(sel);
  DF.$$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // ---- formatting --------------------------------------------------------

  const intFmt = new Intl.NumberFormat(undefined, {maximumFractionDigits: 0});
  DF.int = (n) => (n === null || n === undefined || Number.isNaN(n) ? '–' : intFmt.format(n));
  DF.fixed = (n, digits) =>
    n === null || n === undefined || Number.isNaN(Number(n))
      ? '–'
      : Number(n).toLocaleString(undefined, {
          minimumFractionDigits: digits,
          maximumFractionDigits: digits,
        });
  // A fraction 0..1 as a percentage (values above 1 are taken as percentages already).
  DF.pct = function (x, digits = 1) {
    if (x === null || x === undefined || Number.isNaN(Number(x))) return '–';
    const v = Number(x) > 1 ? Number(x) : Number(x) * 100;
    return DF.fixed(v, digits) + '%';
  };
  DF.bytes = function (n) {
    if (n < 1024) return DF.int(n) + ' B';
    const units = ['KB', 'MB', 'GB'];
    let v = n / 1024;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return DF.fixed(v, v < 10 ? 1 : 0) + ' ' + units[i];
  };
  DF.dateTime = function (ms) {
    if (!ms) return '–';
    return new Date(ms).toLocaleString(undefined, {
      year: 'numeric',
      month: 'short',
      day: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
    });
  };
  DF.ago = function (ms) {
    if (!ms) return '–';
    const s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 45) return 'just now';
    if (s < 90) return '1 min ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return Math.round(s / 3600) + ' h ago';
    if (s < 7 * 86400) return Math.round(s / 86400) + ' d ago';
    return DF.dateTime(ms);
  };
  DF.duration = function (seconds) {
    if (seconds === null || seconds === undefined || seconds < 0) return '–';
    if (seconds < 60) return DF.fixed(seconds, seconds < 10 ? 1 : 0) + ' s';
    const m = Math.floor(seconds / 60);
    const s = Math.round(seconds % 60);
    if (m < 60) return m + ' min ' + String(s).padStart(2, '0') + ' s';
    return Math.floor(m / 60) + ' h ' + String(m % 60).padStart(2, '0') + ' min';
  };

  // Confidence colour scale, shared by every page.
  // The overlays' scale (digitflow run draws them so): green from 99%, the confidence a
  // string can be taken on; amber from pipeline.low_confidence (90% unless the server sets
  // another; /api/v1/me gives it), below which strings are counted for checking; red below.
  DF.lowConfidence = 0.9;
  DF.confClass = function (c) {
    if (c === null || c === undefined) return 'conf-lo';
    if (c >= 0.99) return 'conf-hi';
    if (c >= DF.lowConfidence) return 'conf-mid';
    return 'conf-lo';
  };
  // A confidence as a person reads it against that scale: rounded down (tenths of a percent
  // from 90%), so that 98.6% never shows as a "99%" in amber, nor 89.7% as a "90%" in red.
  DF.confText = function (c) {
    if (c === null || c === undefined || Number.isNaN(Number(c))) return '–';
    if (c >= 0.9) return DF.fixed(Math.floor(c * 1000) / 10, 1) + '%';
    return Math.floor(c * 100) + '%';
  };
  DF.confChip = (c) => DF.el('span', {class: 'conf ' + DF.confClass(c), title: 'confidence'}, DF.confText(c));

  const STATE_LABELS = {
    queued: 'Queued',
    running: 'Running',
    done: 'Done',
    failed: 'Failed',
    cancelled: 'Cancelled',
  };
  DF.stateBadge = (state, job) =>
    job && job.cancel_requested && DF.isActive(state)
      ? DF.el('span', {class: 'badge state-cancelled'}, 'Cancelling')
      : DF.el('span', {class: 'badge state-' + state}, STATE_LABELS[state] || state);
  DF.isActive = (state) => state === 'queued' || state === 'running';

  // A job's progress: <progress> (max = pages total) plus "done / total" and pages/s.
  DF.jobProgressText = function (job) {
    const total = job.pages_total;
    if (total === undefined || total === null || total < 0) {
      if (job.state === 'queued') return 'waiting to start';
      if (job.state === 'running') return 'listing pages…';
      return 'no pages read';
    }
    return DF.int(job.pages_done) + ' / ' + DF.int(total) + ' pages';
  };
  DF.updateProgress = function (bar, job) {
    const total = job.pages_total > 0 ? job.pages_total : 0;
    if (total > 0) {
      bar.max = total;
      bar.value = Math.min(job.pages_done || 0, total);
    } else if (job.state === 'done') {
      bar.max = 1;
      bar.value = 1;
    } else if (job.state === 'running') {
      bar.removeAttribute('value'); // indeterminate while pages are listed
    } else {
      bar.max = 1;
      bar.value = 0;
    }
    bar.className = bar.className.replace(/\bbar-(done|failed|cancelled)\b/g, '').trim();
    if (['done', 'failed', 'cancelled'].includes(job.state)) bar.classList.add('bar-' + job.state);
    bar.setAttribute('aria-valuetext', DF.jobProgressText(job));
  };
  DF.rateText = function (job) {
    if (job.state === 'running' && job.pages_per_s > 0) return DF.fixed(job.pages_per_s, 2) + ' pages/s';
    if (job.state === 'done' && job.pages_per_s > 0) return DF.fixed(job.pages_per_s, 2) + ' pages/s';
    return '';
  };

  // ---- errors ------------------------------------------------------------

  DF.errorText = function (err) {
    if (!err) return 'Something went wrong.';
    if (err instanceof ApiError) return DF.sentence(err.message);
    if (err instanceof TypeError) return 'The server could not be reached. Check your connection and try again.';
    return err.message || String(err);
  };

  // A message as a sentence: capital first letter, closing full stop.
  DF.sentence = function (text) {
    const t = String(text || '').trim();
    if (!t) return t;
    return t[0].toUpperCase() + t.slice(1) + (/[.!?…]$/.test(t) ? '' : '.');
  };

  DF.showError = function (err) {
    const banner = document.getElementById('banner');
    const text = DF.errorText(err);
    if (!banner) {
      console.warn(text);
      return;
    }
    DF.clear(banner);
    banner.append(
      DF.el('div', {class: 'banner-text'}, text),
      DF.el('button', {
        type: 'button',
        class: 'banner-close',
        'aria-label': 'Dismiss',
        text: '×',
        onclick: () => DF.clearError(),
      }),
    );
    banner.hidden = false;
  };
  DF.clearError = function () {
    const banner = document.getElementById('banner');
    if (banner) {
      banner.hidden = true;
      DF.clear(banner);
    }
  };

  DF.toLogin = function () {
    const here = location.pathname + location.search;
    const next = here === '/' || here.startsWith('/login') ? '' : '?next=' + encodeURIComponent(here);
    location.assign('/login' + next);
  };

  const isPublicPage = () => document.body.dataset.public === '1';

  // ---- the API -----------------------------------------------------------

  async function readError(res) {
    let body = null;
    let message = '';
    try {
      const text = await res.text();
      try {
        body = JSON.parse(text);
        message = body && body.error ? String(body.error) : '';
      } catch (e) {
        message = '';
      }
    } catch (e) {
      message = '';
    }
    if (!message) message = 'The server answered ' + res.status + (res.statusText ? ' ' + res.statusText : '') + '.';
    return new ApiError(res.status, message, body);
  }

  // DF.api('GET', '/api/v1/jobs') -> parsed JSON; body may be an object (sent as JSON),
  // a Blob/File (sent as is) or FormData. Throws ApiError with the server's text.
  DF.api = async function (method, path, body, options = {}) {
    const headers = {Accept: 'application/json'};
    let payload;
    if (body instanceof Blob) {
      payload = body;
      headers['Content-Type'] = body.type || 'application/octet-stream';
    } else if (body instanceof FormData) {
      payload = body;
    } else if (body !== undefined && body !== null) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
    const res = await fetch(path, {
      method,
      headers,
      body: payload,
      credentials: 'same-origin',
      cache: 'no-store',
    });
    if (res.status === 401 && !isPublicPage() && !options.no401) {
      DF.toLogin();
      throw new ApiError(401, 'Your session has ended. Please log in again.');
    }
    if (!res.ok) throw await readError(res);
    if (res.status === 204) return null;
    const type = res.headers.get('Content-Type') || '';
    if (type.includes('json')) return res.json();
    return res.text();
  };

  DF.setCsrf = function (token) {
    csrf = token || null;
  };

  // An upload with progress (fetch has no upload progress): resolves {status, body}.
  DF.upload = function (path, formData, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', path);
      xhr.setRequestHeader('Accept', 'application/json');
      if (csrf) xhr.setRequestHeader('X-CSRF-Token', csrf);
      xhr.upload.addEventListener('progress', (e) => {
        if (onProgress) onProgress(e.loaded, e.lengthComputable ? e.total : 0);
      });
      xhr.addEventListener('load', () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (e) {
          body = null;
        }
        if (xhr.status === 401) {
          DF.toLogin();
          reject(new ApiError(401, 'Your session has ended. Please log in again.'));
          return;
        }
        if (xhr.status < 200 || xhr.status >= 300) {
          const message =
            body && body.error ? String(body.error) : 'The server answered ' + xhr.status + '.';
          reject(new ApiError(xhr.status, message, body));
          return;
        }
        resolve({status: xhr.status, body});
      });
      xhr.addEventListener('error', () => reject(new TypeError('network error')));
      xhr.addEventListener('abort', () => reject(new ApiError(0, 'The upload was cancelled.')));
      xhr.send(formData);
      DF.currentUpload = xhr;
    });
  };

  // ---- polling -----------------------------------------------------------

  // Calls fn every `ms` (after the previous call finished) until fn returns false.
  DF.poll = function (fn, ms) {
    let stopped = false;
    let timer = null;
    const tick = async () => {
      if (stopped) return;
      let again = true;
      try {
        again = (await fn()) !== false;
      } catch (err) {
        DF.showError(err);
      }
      if (again && !stopped) timer = setTimeout(tick, ms);
    };
    timer = setTimeout(tick, ms);
    return {
      stop() {
        stopped = true;
        clearTimeout(timer);
      },
    };
  };

  // ---- navigation --------------------------------------------------------

  const NAV = [
    {href: '/jobs', label: 'Jobs', match: /^\/jobs(\/|$)|^\/$/},
    {href: '/submit', label: 'Submit', match: /^\/submit/},
    {href: '/review', label: 'Review', match: /^\/review/},
    {href: '/model', label: 'Model', match: /^\/model/},
    {href: '/pad', label: 'Pad', match: /^\/pad/},
    {href: '/admin', label: 'Admin', match: /^\/admin/, admin: true},
  ];

  DF.brand = () =>
    DF.el(
      'a',
      {class: 'brand', href: '/jobs'},
      DF.el('span', {class: 'brand-mark', 'aria-hidden': 'true'}, '42'),
      'digitflow',
    );

  function renderNav(user) {
    const bar = document.getElementById('topbar');
    if (!bar) return;
    const path = location.pathname;
    const links = DF.el('ul', {class: 'nav-links'});
    for (const item of NAV) {
      if (item.admin && user.role !== 'admin') continue;
      links.append(
        DF.el(
          'li',
          null,
          DF.el(
            'a',
            {href: item.href, 'aria-current': item.match.test(path) ? 'page' : null},
            item.label,
          ),
        ),
      );
    }
    const logout = DF.el('button', {type: 'button', class: 'btn btn-secondary btn-small', id: 'logout'}, 'Log out');
    logout.addEventListener('click', async () => {
      logout.disabled = true;
      try {
        await DF.api('POST', '/api/v1/logout');
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) {
          DF.showError(err);
          logout.disabled = false;
          return;
        }
      }
      location.assign('/login');
    });
    const who = DF.el(
      'div',
      {class: 'nav-user'},
      DF.el(
        'a',
        {href: '/account', title: 'Your account', 'aria-current': path.startsWith('/account') ? 'page' : null},
        DF.el('span', {class: 'nav-name', id: 'nav-name'}, user.name),
      ),
      DF.el('span', {class: 'role' + (user.role === 'admin' ? ' role-admin' : ''), id: 'nav-role'}, user.role),
      logout,
    );
    DF.clear(bar);
    bar.append(
      DF.el(
        'nav',
        {class: 'topbar-inner', 'aria-label': 'Main'},
        DF.brand(),
        links,
        who,
      ),
    );
  }

  // Every signed-in page: DF.start(async (user) => { ... }). Loads /api/v1/me (401 goes
  // to /login), keeps the CSRF token, draws the navigation, then runs the page.
  DF.start = function (main) {
    const run = async () => {
      let me;
      try {
        me = await DF.api('GET', '/api/v1/me');
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) DF.showError(err);
        return;
      }
      DF.setCsrf(me.csrf);
      DF.user = me.user;
      if (typeof me.low_confidence === 'number') DF.lowConfidence = me.low_confidence;
      renderNav(me.user);
      try {
        await main(me.user);
      } catch (err) {
        DF.showError(err);
      }
    };
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', run);
    else run();
  };

  // Login and register: no session needed.
  DF.startPublic = function (main) {
    const run = () => {
      try {
        main();
      } catch (err) {
        DF.showError(err);
      }
    };
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', run);
    else run();
  };

  // Announces a sentence to screen readers through the page's polite live region.
  DF.announce = function (text) {
    const region = document.getElementById('live');
    if (region) region.textContent = text;
  };

  // The page a login should return to: ?next= when it is a local path.
  DF.nextPath = function () {
    const next = new URLSearchParams(location.search).get('next');
    if (next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/login')) return next;
    return '/jobs';
  };

  // Disables a form's controls while `work` runs.
  DF.busy = async function (form, work) {
    const controls = DF.$$('button, input, select', form);
    const was = controls.map((c) => c.disabled);
    controls.forEach((c) => (c.disabled = true));
    form.setAttribute('aria-busy', 'true');
    try {
      return await work();
    } finally {
      controls.forEach((c, i) => (c.disabled = was[i]));
      form.removeAttribute('aria-busy');
    }
  };

  DF.formError = function (node, err) {
    if (!node) return DF.showError(err);
    if (!err) {
      node.hidden = true;
      node.textContent = '';
      return;
    }
    node.textContent = DF.errorText(err);
    node.hidden = false;
  };
})();
