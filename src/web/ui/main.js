// The SMB Gateway web UI: sign-in (Proxmox VE user or gateway token), dashboard, share pages, create wizard.
import './style.css';
import { api, authKind, loginPve, nodePath, loginToken, logout, node, resume, setOnExpired, whoami } from './api.js';
import { dashboardView } from './dashboard.js';
import { shareView } from './share.js';
import { $, el } from './util.js';
import { openWizard, wireWizard } from './wizard.js';

let view = { stop: () => undefined };


function showLogin(message = '') {
  view.stop();
  $('#app').hidden = true; $('#logout').hidden = true; $('#new-share').hidden = true;
  $('#whoami').textContent = '';
  $('#login').hidden = false;
  const pve = authKind === 'pve';
  $('#pve-fields').hidden = !pve;
  $('#token-fields').hidden = pve;
  $('#login-info').textContent = message || (pve ? 'Sign in with your Proxmox VE user.' : 'This host is not a Proxmox VE node: sign in with a gateway API token.');
  (pve ? $('#username') : $('#token')).focus();
}

function nav(shares) {

  $('#nav-shares').replaceChildren(...shares.map((s) => el('li', {}, el('a', { href: `#/share/${encodeURIComponent(s.name)}`, class: s.bad ? 'bad' : '', 'data-share': s.name }, s.name))));
  markNav();
}
function markNav() {
  for (const a of document.querySelectorAll('.tree a')) a.classList.toggle('selected', a.getAttribute('href') === (location.hash || '#/'));
}

function route() {
  view.stop();
  const m = /^#\/share\/(.+)$/.exec(location.hash);
  const content = $('#content');
  if (m) view = shareView(content, decodeURIComponent(m[1]), { onDeleted: () => { location.hash = '#/'; } });
  else view = dashboardView(content, nav);
  markNav();
}

function showApp() {
  $('#login').hidden = true;
  $('#app').hidden = false; $('#logout').hidden = false; $('#new-share').hidden = false;
  $('#node').textContent = `Node ${node}`;
  $('#whoami').textContent = whoami();
  // The resource tree lists the shares whichever page comes first (the dashboard keeps it current).
  api('GET', `${nodePath}/smbgateway`).then((l) => { if (!document.querySelector('#nav-shares li')) nav(l.map((s) => ({ name: s.sharename, bad: false }))); }, () => undefined);
  route();
}

$('#use-token').addEventListener('click', () => { $('#pve-fields').hidden = true; $('#token-fields').hidden = false; $('#token').focus(); });

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#login-error').textContent = '';
  try {
    if (!$('#token-fields').hidden) await loginToken($('#token').value.trim());
    else await loginPve($('#username').value.trim(), $('#password').value, $('#realm').value);
    $('#password').value = '';
    showApp();
  } catch (e) {
    $('#login-error').textContent = e.status === 401 ? 'Login failed. Please try again.' : `Login failed: ${e.message}`;
  }
});

$('#logout').addEventListener('click', () => { logout(); showLogin('You are logged out.'); });
$('#new-share').addEventListener('click', () => openWizard(() => { if (!location.hash || location.hash === '#/') route(); }));
window.addEventListener('hashchange', () => { if (!$('#app').hidden) route(); });
setOnExpired((msg) => showLogin(msg));
wireWizard();

resume().then((ok) => (ok ? showApp() : showLogin()));
