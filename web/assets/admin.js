// Admin page: every user (GET /api/v1/users), role change and enable/disable
// (POST /api/v1/users/{id}).
'use strict';

DF.start(async (user) => {
  if (user.role !== 'admin') {
    DF.$('#not-admin').hidden = false;
    DF.$('#user-stats').hidden = true;
    return;
  }
  const body = DF.$('#users-body');

  async function update(u, change, control) {
    control.disabled = true;
    try {
      await DF.api('POST', '/api/v1/users/' + encodeURIComponent(u.id), change);
      DF.announce('Saved ' + u.name + '.');
      await load();
    } catch (err) {
      DF.showError(err);
      await load().catch(() => {});
    }
  }

  function row(u) {
    const self = u.id === user.id;
    const role = DF.el(
      'select',
      {class: 'compact', 'aria-label': 'Role of ' + u.name},
      DF.el('option', {value: 'user', selected: u.role === 'user'}, 'user'),
      DF.el('option', {value: 'admin', selected: u.role === 'admin'}, 'admin'),
    );
    role.addEventListener('change', () => update(u, {role: role.value}, role));
    if (self) {
      role.disabled = true;
      role.title = 'Another administrator can change your role';
    }
    const toggle = DF.el(
      'button',
      {type: 'button', class: 'btn btn-small ' + (u.disabled ? 'btn-secondary' : 'btn-danger')},
      u.disabled ? 'Enable' : 'Disable',
    );
    toggle.setAttribute('aria-label', (u.disabled ? 'Enable ' : 'Disable ') + u.name);
    if (self) {
      toggle.disabled = true;
      toggle.title = 'You cannot disable yourself';
    }
    toggle.addEventListener('click', () => update(u, {disabled: !u.disabled}, toggle));
    return DF.el(
      'tr',
      null,
      DF.el(
        'td',
        {'data-label': 'User', class: 'cell-main'},
        DF.el('strong', null, u.name),
        self ? DF.el('span', {class: 'muted small'}, ' (you)') : null,
        DF.el('span', {class: 'job-sub'}, '#' + u.id),
      ),
      DF.el('td', {'data-label': 'E-mail'}, u.email || '–'),
      DF.el('td', {'data-label': 'Role'}, role),
      DF.el(
        'td',
        {'data-label': 'Status'},
        u.disabled ? DF.el('span', {class: 'badge badge-bad'}, 'disabled') : DF.el('span', {class: 'badge badge-ok'}, 'enabled'),
      ),
      DF.el('td', {class: 'num'}, toggle),
    );
  }

  async function load() {
    const data = await DF.api('GET', '/api/v1/users');
    const users = data.users || [];
    DF.clear(body);
    users.forEach((u) => body.append(row(u)));
    DF.$('#count-users').textContent = DF.int(users.length);
    DF.$('#count-admins').textContent = DF.int(users.filter((u) => u.role === 'admin').length);
    DF.$('#users-card').hidden = false;
  }

  await load();
});
