// Posts the password form as JSON (the browser adds our Origin), then goes on to the page the
// server chose: data-next holds a path it has already checked to be on this origin.
'use strict';

document.addEventListener('DOMContentLoaded', () => {
  const form = document.getElementById('sign-in');
  const problem = document.getElementById('sign-in-error');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    problem.hidden = true;
    const fields = new FormData(form);
    let response;
    try {
      response = await fetch('/auth/password', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ email: fields.get('email'), password: fields.get('password') }),
      });
    } catch {
      problem.textContent = 'OCIS could not be reached. Try again.';
      problem.hidden = false;
      return;
    }
    if (response.ok) {
      window.location.assign(form.dataset.next || '/console');
      return;
    }
    let message = 'Sign-in failed.';
    try {
      message = (await response.json()).error || message;
    } catch {
      // a body that is not JSON keeps the generic message
    }
    problem.textContent = message;
    problem.hidden = false;
  });
});
