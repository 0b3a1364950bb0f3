// Create and edit a key, show a new secret once, and confirm destructive
// actions, all in <dialog> elements (modal, focus-trapped, Escape cancels).

import { byId, show } from "./dom.js";
import { parseTokenAmount } from "./format.js";

const pad = (n) => String(n).padStart(2, "0");

/** An ISO instant as a datetime-local value in the browser's time zone. */
function localInputValue(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// Any [data-close] button closes its dialog.
document.addEventListener("click", (event) => {
  const closer = event.target instanceof Element ? event.target.closest("[data-close]") : null;
  closer?.closest("dialog")?.close();
});

/** Asks before a destructive action; resolves true only on the confirm button. */
export function confirmAction({ title, message, confirmLabel }) {
  const dialog = byId("confirm-dialog");
  byId("confirm-title").textContent = title;
  byId("confirm-message").textContent = message;
  byId("confirm-ok").textContent = confirmLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), {
      once: true,
    });
  });
}

/** Shows a secret once, with a Copy button; the text is removed when the dialog closes. */
export function showSecret(title, secret) {
  const dialog = byId("secret-dialog");
  const value = byId("secret-value");
  const copied = byId("secret-copied");
  byId("secret-title").textContent = title;
  value.textContent = secret;
  copied.textContent = "";
  byId("copy-secret").onclick = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      copied.textContent = "Copied to the clipboard.";
    } catch {
      copied.textContent = "Could not copy: select the key and copy it by hand.";
    }
  };
  dialog.addEventListener(
    "close",
    () => {
      value.textContent = "";
      byId("copy-secret").onclick = null;
    },
    { once: true },
  );
  dialog.showModal();
}

/** Reads the key form; returns {fields} or {error}. */
function readForm(editing) {
  const name = byId("key-name").value.trim();
  const limit = parseTokenAmount(byId("key-limit").value);
  const model = byId("key-model").value.trim() || null;
  const expiresText = byId("key-expires").value;
  const concurrencyText = byId("key-concurrency").value.trim();
  const weeklyText = byId("key-weekly").value.trim();
  const modelList = byId("key-models")
    .value.split(",")
    .map((m) => m.trim())
    .filter((m) => m !== "");
  // Empty: any model.
  const allowedModels = modelList.length === 0 ? null : modelList;
  if (name === "") return { error: "Give the key a name." };
  // 0 is a valid limit (a key that may not spend), as in the API and the CLI.
  if (!(Number.isSafeInteger(limit) && limit >= 0)) {
    return { error: "The limit must be a whole number of tokens, 0 or more, like 200000 or 200k." };
  }
  // Empty: no limit of its own, so the gateway's default applies.
  const maxConcurrent = concurrencyText === "" ? null : Number(concurrencyText);
  if (maxConcurrent !== null && !(/^\d+$/.test(concurrencyText) && maxConcurrent >= 1)) {
    return {
      error: "Concurrent requests must be a whole number, 1 or more, or empty for the default.",
    };
  }
  // Empty: no weekly limit; only the 5-hour one applies.
  const weekly = weeklyText === "" ? null : parseTokenAmount(weeklyText);
  if (weekly !== null && !(Number.isSafeInteger(weekly) && weekly >= 0)) {
    return {
      error: "The weekly limit must be a whole number of tokens, like 2M, or empty for none.",
    };
  }
  const expiresAt = expiresText === "" ? null : new Date(expiresText).toISOString();
  if (editing === null) {
    return {
      fields: {
        name,
        token_limit_per_5h: limit,
        model,
        expires_at: expiresAt,
        max_concurrent: maxConcurrent,
        token_limit_per_week: weekly,
        allowed_models: allowedModels,
      },
    };
  }
  // Only what changed: an untouched expiry keeps its seconds.
  const fields = {};
  if (name !== editing.name) fields.name = name;
  if (limit !== editing.token_limit_per_5h) fields.token_limit_per_5h = limit;
  if (model !== editing.model) fields.model = model;
  if (expiresText !== localInputValue(editing.expires_at)) fields.expires_at = expiresAt;
  if (maxConcurrent !== editing.max_concurrent) fields.max_concurrent = maxConcurrent;
  if (weekly !== editing.token_limit_per_week) fields.token_limit_per_week = weekly;
  if (JSON.stringify(allowedModels) !== JSON.stringify(editing.allowed_models)) {
    fields.allowed_models = allowedModels;
  }
  const disabled = byId("key-disabled").checked;
  if (disabled !== editing.disabled) fields.disabled = disabled;
  return { fields };
}

/** The create / edit dialog and the rotate / revoke confirmations. */
export function createKeyDialogs({ api, onChanged, announce, report }) {
  const dialog = byId("key-dialog");
  const form = byId("key-form");
  const error = byId("key-form-error");
  const submit = byId("key-submit");
  let editing = null;

  function open(key) {
    editing = key;
    form.reset();
    error.textContent = "";
    byId("key-dialog-title").textContent = key ? `Edit ${key.name}` : "New key";
    submit.textContent = key ? "Save" : "Create key";
    show(byId("key-disabled-row"), key !== null);
    if (key) {
      byId("key-name").value = key.name;
      byId("key-limit").value = String(key.token_limit_per_5h);
      byId("key-model").value = key.model ?? "";
      byId("key-expires").value = localInputValue(key.expires_at);
      byId("key-concurrency").value = key.max_concurrent === null ? "" : String(key.max_concurrent);
      byId("key-models").value = (key.allowed_models ?? []).join(", ");
      byId("key-weekly").value =
        key.token_limit_per_week === null ? "" : String(key.token_limit_per_week);
      byId("key-disabled").checked = key.disabled;
    }
    dialog.showModal();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { fields, error: invalid } = readForm(editing);
    if (invalid) {
      error.textContent = invalid;
      return;
    }
    submit.disabled = true;
    try {
      if (editing === null) {
        const created = await api.createKey(fields);
        dialog.close();
        showSecret(`Key created: ${created.name}`, created.key);
        announce(`Key ${created.name} created.`);
      } else if (Object.keys(fields).length > 0) {
        const saved = await api.updateKey(editing.id, fields);
        dialog.close();
        announce(`Key ${saved.name} saved.`);
      } else {
        dialog.close();
      }
      onChanged();
    } catch (err) {
      error.textContent = err.message;
    } finally {
      submit.disabled = false;
    }
  });

  async function rotate(key) {
    const sure = await confirmAction({
      title: `Rotate ${key.name}?`,
      message:
        "A new secret replaces the current one, which stops working at once. Usage, limits and expiry stay.",
      confirmLabel: "Rotate key",
    });
    if (!sure) return;
    try {
      const rotated = await api.rotateKey(key.id);
      showSecret(`New secret for ${rotated.name}`, rotated.key);
      announce(`Key ${rotated.name} rotated.`);
      onChanged();
    } catch (err) {
      report(err);
    }
  }

  async function revoke(key) {
    const sure = await confirmAction({
      title: `Revoke ${key.name}?`,
      message:
        "The key stops working at once and cannot be used again. Its usage history stays in every total (filter by status revoked to see it).",
      confirmLabel: "Revoke key",
    });
    if (!sure) return;
    try {
      await api.deleteKey(key.id);
      announce(`Key ${key.name} revoked.`);
      onChanged();
    } catch (err) {
      report(err);
    }
  }

  return { create: () => open(null), edit: open, rotate, revoke };
}
