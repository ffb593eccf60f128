// Login page: POST /api/v1/login, then back to the page that sent us here.
'use strict';

DF.startPublic(() => {
  const form = DF.$('#login-form');
  const errorBox = DF.$('#form-error');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    DF.formError(errorBox, null);
    const username = form.username.value.trim();
    const password = form.password.value;
    if (!username || !password) {
      DF.formError(errorBox, new Error('Enter your username and password.'));
      (username ? form.password : form.username).focus();
      return;
    }
    try {
      await DF.busy(form, () => DF.api('POST', '/api/v1/login', {username, password}));
      location.assign(DF.nextPath());
    } catch (err) {
      if (err instanceof DF.ApiError && err.status === 429) {
        DF.formError(errorBox, new Error(DF.sentence(err.message) + ' Wait a little before trying again.'));
      } else {
        DF.formError(errorBox, err);
      }
      form.password.value = '';
      form.password.focus();
    }
  });
});
