// The operator dashboard: sign in with the admin key, then keys, usage and
// the actions on keys. The session is the server's HttpOnly cookie; the page
// keeps only the CSRF token, in memory, and asks for it again on every load.

import { createActivity } from "./activity.js";
import { createAdminApi } from "./admin-api.js";
import { byId, show } from "./dom.js";
import { createKeyDetail } from "./key-detail.js";
import { createKeyDialogs } from "./key-dialogs.js";
import { createKeysTable } from "./keys-table.js";
import { createTotals } from "./totals.js";

const signin = byId("signin");
const signedIn = byId("signed-in");
const signinForm = byId("signin-form");
const signinError = byId("signin-error");
const adminKey = byId("admin-key");
const signOut = byId("sign-out");
const refresh = byId("refresh");

function announce(message) {
  byId("status").textContent = message;
}

function showSignIn(message = "") {
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  show(signedIn, false);
  show(signOut, false);
  show(refresh, false);
  show(signin);
  signinError.textContent = message;
  adminKey.focus();
}

const api = createAdminApi({
  onSessionLost: () => showSignIn("Your session has ended. Sign in again."),
});
const detail = createKeyDetail({ api });
const totals = createTotals({ api });
const activity = createActivity({ api });
const dialogs = createKeyDialogs({
  api,
  announce,
  report: (err) => {
    byId("keys-error").textContent = err.message;
  },
  onChanged: () => reloadAll(),
});
const table = createKeysTable({
  api,
  actions: {
    detail: detail.open,
    edit: dialogs.edit,
    rotate: dialogs.rotate,
    revoke: dialogs.revoke,
  },
});

function reloadAll() {
  void table.load();
  void totals.load();
  void activity.load();
  void detail.refresh();
}

function showDashboard() {
  show(signin, false);
  signinError.textContent = "";
  show(signedIn);
  show(signOut);
  show(refresh);
  reloadAll();
}

signinForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = adminKey.value;
  signinError.textContent = "";
  try {
    await api.signIn(key);
    adminKey.value = "";
    showDashboard();
  } catch (err) {
    signinError.textContent = err.status === 401 ? "That admin key is not right." : err.message;
  }
});

signOut.addEventListener("click", async () => {
  try {
    await api.signOut();
  } catch {
    // Signed out here whatever the server said; the cookie expires on its own.
  }
  showSignIn();
  announce("Signed out.");
});

refresh.addEventListener("click", reloadAll);
byId("new-key").addEventListener("click", () => dialogs.create());

try {
  if (await api.session()) showDashboard();
  else showSignIn();
} catch (err) {
  showSignIn(err.message);
}
