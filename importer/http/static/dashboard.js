"use strict";
// The operator page's one action: unlocking a register. The page reads completely without this script; it only
// shows and sends the unlock forms, because the POST needs an Authorization header (a bearer token with the
// operator scope), which a plain HTML form cannot send. With the token field left empty the browser's client
// certificate (mutual TLS) identifies the operator instead. The token is sent once and kept nowhere.
document.querySelectorAll("form.unlock-form").forEach(function (form) {
  const output = form.querySelector("output");
  const button = form.querySelector("button");
  form.hidden = false;
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const register = form.dataset.register;
    const confirmation = form.elements.confirm.value.trim();
    if (confirmation !== register) {
      output.textContent = "Type " + register + " to confirm.";
      return;
    }
    const headers = { "Content-Type": "application/json", "Accept": "application/json" };
    const token = form.elements.token.value.trim();
    if (token) {
      headers.Authorization = "Bearer " + token;
    }
    const body = { confirm: confirmation };
    if (form.dataset.lock) {
      body.lock = form.dataset.lock;
    }
    button.disabled = true;
    output.textContent = "Unlocking…";
    try {
      const response = await fetch(form.dataset.action, {
        method: "POST", headers: headers, body: JSON.stringify(body), cache: "no-store", credentials: "same-origin",
      });
      const answer = await response.json().catch(function () { return {}; });
      if (response.ok) {
        form.elements.token.value = "";
        output.textContent = answer.unlocked ? register + " is unlocked; reloading…" : register + " was not locked.";
        output.className = "done";
        window.setTimeout(function () { window.location.reload(); }, 700);
        return;
      }
      output.textContent = "Not unlocked (" + response.status + "): " + (answer.detail || answer.title || "");
    } catch (error) {
      output.textContent = "Not unlocked: " + error;
    }
    output.className = "failed";
    button.disabled = false;
  });
});
