// Account page: profile, change password (POST /api/v1/password), API tokens
// (create shows the token once with a copy button, list, revoke).
'use strict';

DF.start(async (user) => {
  DF.$('#p-name').textContent = user.name;
  DF.$('#p-email').textContent = user.email || '–';
  DF.$('#p-role').textContent = user.role;

  // ---- password ------------------------------------------------------------
  const pform = DF.$('#password-form');
  const perr = DF.$('#password-error');
  const pok = DF.$('#password-ok');
  pform.addEventListener('submit', async (e) => {
    e.preventDefault();
    DF.formError(perr, null);
    pok.hidden = true;
    const current = pform.current.value;
    const next = pform.new.value;
    if (!current) return DF.formError(perr, new Error('Enter your current password.'));
    if (next.length < 10) return DF.formError(perr, new Error('The new password needs at least 10 characters.'));
    if (next !== pform.new2.value) return DF.formError(perr, new Error('The two new passwords do not match.'));
    try {
      // A 401 here is the current password, not an ended session: say so on the form.
      await DF.busy(pform, () => DF.api('POST', '/api/v1/password', {current, new: next}, {no401: true}));
      pform.reset();
      pok.textContent = 'Password changed. Your other sessions were signed out.';
      pok.hidden = false;
    } catch (err) {
      if (err.status === 401 && /current password/.test(err.message)) {
        DF.formError(perr, new Error('Your current password is not right. Nothing was changed.'));
        pform.current.value = '';
        pform.current.focus();
        return;
      }
      if (err.status === 401) return DF.toLogin();  // the session itself has ended
      DF.formError(perr, err);
    }
  });

  // ---- tokens --------------------------------------------------------------
  const tform = DF.$('#token-form');
  const terr = DF.$('#token-error');
  const body = DF.$('#tokens-body');

  async function loadTokens() {
    const data = await DF.api('GET', '/api/v1/tokens');
    const tokens = data.tokens || [];
    DF.clear(body);
    DF.$('#tokens-table').hidden = tokens.length === 0;
    DF.$('#tokens-empty').hidden = tokens.length > 0;
    for (const t of tokens) {
      const revoke = DF.el('button', {type: 'button', class: 'btn btn-danger btn-small'}, 'Revoke');
      revoke.setAttribute('aria-label', 'Revoke token ' + t.name);
      revoke.addEventListener('click', async () => {
        if (!confirm('Revoke the token “' + t.name + '”? Scripts using it stop working.')) return;
        revoke.disabled = true;
        try {
          await DF.api('DELETE', '/api/v1/tokens/' + encodeURIComponent(t.id));
          await loadTokens();
        } catch (err) {
          DF.showError(err);
          revoke.disabled = false;
        }
      });
      body.append(
        DF.el(
          'tr',
          null,
          DF.el('td', {'data-label': 'Name', class: 'cell-main'}, DF.el('strong', null, t.name)),
          DF.el('td', {'data-label': 'Created', class: 'nowrap'}, DF.dateTime(t.created_ms)),
          DF.el('td', {'data-label': 'Last used', class: 'nowrap'}, t.last_used_ms ? DF.ago(t.last_used_ms) : 'never'),
          DF.el('td', {class: 'num'}, revoke),
        ),
      );
    }
  }

  tform.addEventListener('submit', async (e) => {
    e.preventDefault();
    DF.formError(terr, null);
    const name = tform.name.value.trim();
    if (!name) {
      DF.formError(terr, new Error('Give the token a name, so that you know later what uses it.'));
      tform.name.focus();
      return;
    }
    try {
      const res = await DF.busy(tform, () => DF.api('POST', '/api/v1/tokens', {name}));
      tform.reset();
      DF.$('#new-token-value').textContent = res.token;
      DF.$('#copy-status').textContent = '';
      DF.$('#new-token').hidden = false;
      await loadTokens();
      DF.$('#copy-token').focus();
    } catch (err) {
      DF.formError(terr, err);
    }
  });

  DF.$('#copy-token').addEventListener('click', async () => {
    const value = DF.$('#new-token-value').textContent;
    const status = DF.$('#copy-status');
    try {
      await navigator.clipboard.writeText(value);
      status.textContent = 'Copied to the clipboard.';
    } catch (err) {
      const range = document.createRange();
      range.selectNodeContents(DF.$('#new-token-value'));
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      status.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
    }
  });

  await loadTokens();
});
