/*
 * Passkey ceremonies for the hosted pages — the only script they load (CSP script-src 'self').
 *
 * Every <form data-webauthn="create|get"> is driven here: its options come from the JSON data
 * block named by data-webauthn-options, or from a POST (with the form's CSRF token) to
 * data-webauthn-options-url. The script runs navigator.credentials.create() or .get()
 * (W3C WebAuthn Level 3 §5.1.3, §5.1.4), writes the PublicKeyCredential as JSON (§5.1
 * RegistrationResponseJSON / AuthenticationResponseJSON) into the hidden "credential" field and
 * submits the form. The server verifies everything; nothing here is trusted.
 */
(function () {
  "use strict";

  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var binary = atob(b64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      return Object.assign({}, d, { id: toBytes(d.id) });
    });
  }

  /* §5.1.9 parseCreationOptionsFromJSON / parseRequestOptionsFromJSON, by hand where missing. */
  function creationOptions(json) {
    if (window.PublicKeyCredential.parseCreationOptionsFromJSON) {
      return window.PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: toBytes(json.challenge),
      user: Object.assign({}, json.user, { id: toBytes(json.user.id) }),
      excludeCredentials: descriptors(json.excludeCredentials)
    });
  }

  function requestOptions(json) {
    if (window.PublicKeyCredential.parseRequestOptionsFromJSON) {
      return window.PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: toBytes(json.challenge),
      allowCredentials: descriptors(json.allowCredentials)
    });
  }

  /* §5.1.8 toJSON(), by hand where missing. */
  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") {
      try { return credential.toJSON(); } catch (ignored) { /* fall through */ }
    }
    var r = credential.response;
    var out = {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults
        ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64url(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = toB64url(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toB64url(r.authenticatorData);
      out.response.signature = toB64url(r.signature);
      out.response.userHandle = r.userHandle ? toB64url(r.userHandle) : null;
    }
    return out;
  }

  function csrfToken(form) {
    var field = form.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  function loadOptions(form) {
    var url = form.getAttribute("data-webauthn-options-url");
    if (url) {
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Accept": "application/json" },
        body: new URLSearchParams({ csrf_token: csrfToken(form) })
      }).then(function (response) {
        if (response.status === 429) { throw new Error("throttled"); }
        if (!response.ok) { throw new Error("options"); }
        return response.json();
      }).then(function (body) { return body.publicKey; });
    }
    var block = document.getElementById(form.getAttribute("data-webauthn-options"));
    return Promise.resolve(JSON.parse(block.textContent));
  }

  function message(error) {
    if (error && error.message === "throttled") {
      return "Too many failed attempts. Try again later.";
    }
    if (error && error.name === "NotAllowedError") {
      return "The passkey request was cancelled or timed out. Try again.";
    }
    if (error && error.name === "InvalidStateError") {
      return "This device already has a passkey for your account.";
    }
    return "The passkey did not work. Try again, or use another method.";
  }

  function showError(form, text) {
    var box = form.querySelector("[data-webauthn-error]");
    if (box) {
      box.textContent = text;
      box.hidden = false;
    }
  }

  function run(form) {
    var ceremony = form.getAttribute("data-webauthn");
    return loadOptions(form).then(function (json) {
      if (ceremony === "create") {
        return navigator.credentials.create({ publicKey: creationOptions(json) });
      }
      return navigator.credentials.get({ publicKey: requestOptions(json) });
    }).then(function (credential) {
      if (!credential) { throw new Error("no credential"); }
      form.querySelector('input[name="credential"]').value =
        JSON.stringify(credentialJSON(credential));
      form.submit();
    });
  }

  function setUp(form) {
    if (form.hasAttribute("data-webauthn-ready")) { return; }  /* the script may load twice */
    form.setAttribute("data-webauthn-ready", "");
    if (!window.PublicKeyCredential || !navigator.credentials) {
      var note = form.parentNode.querySelector("[data-webauthn-unsupported]");
      if (note) { note.hidden = false; }
      return;
    }
    form.hidden = false;
    var button = form.querySelector("[data-webauthn-button]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (button) { button.disabled = true; }
      run(form).catch(function (error) {
        showError(form, message(error));
        if (button) { button.disabled = false; }
      });
    });
  }

  function start() {
    var forms = document.querySelectorAll("form[data-webauthn]");
    for (var i = 0; i < forms.length; i++) { setUp(forms[i]); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
