// Register page: the password rules are shown as they are met; the server has the last
// word (it also refuses common passwords) and its message is shown as is.
'use strict';

DF.startPublic(() => {
  const form = DF.$('#register-form');
  const errorBox = DF.$('#form-error');
  const rules = {
    length: DF.$('#rule-length'),
    common: DF.$('#rule-common'),
    match: DF.$('#rule-match'),
    name: DF.$('#rule-name'),
  };

  const check = () => {
    const p = form.password.value;
    const q = form.password2.value;
    rules.length.classList.toggle('met', p.length >= 10);
    rules.match.classList.toggle('met', p.length > 0 && p === q);
    const name = form.username.value.trim().toLowerCase();
    rules.name.classList.toggle('met', p.length > 0 && !(name && p.toLowerCase().includes(name)));
    return p.length >= 10 && p === q;
  };
  form.password.addEventListener('input', check);
  form.password2.addEventListener('input', check);
  form.username.addEventListener('input', check);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    DF.formError(errorBox, null);
    const username = form.username.value.trim();
    const email = form.email.value.trim();
    const password = form.password.value;
    if (!username) return fail('Choose a username.', form.username);
    if (!email || !email.includes('@')) return fail('Enter a valid e-mail address.', form.email);
    if (password.length < 10) return fail('The password needs at least 10 characters.', form.password);
    if (password !== form.password2.value) return fail('The two passwords do not match.', form.password2);
    try {
      await DF.busy(form, () => DF.api('POST', '/api/v1/register', {username, email, password}));
      location.assign('/jobs');
    } catch (err) {
      DF.formError(errorBox, err);
      errorBox.focus?.();
    }
  });

  function fail(message, input) {
    DF.formError(errorBox, new Error(message));
    input.setAttribute('aria-invalid', 'true');
    input.addEventListener('input', () => input.removeAttribute('aria-invalid'), {once: true});
    input.focus();
  }
});
