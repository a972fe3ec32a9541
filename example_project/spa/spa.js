// The browser-mode example: code flow with PKCE, access token in memory, refresh from the
// HttpOnly cookie. No framework, no build step; docs/browser-mode.md explains the server side.
//
// Where things live:
// - the access token: the variable `accessToken` below, nowhere else;
// - the refresh token: the `tl_refresh` cookie (HttpOnly, Path=/auth/token/), which this
//   script can neither read nor send anywhere but the token endpoint;
// - the PKCE verifier and the state: sessionStorage, for the round trip through
//   /auth/authorize/ only, removed as soon as the page is back.
"use strict";

(() => {
  const PENDING_KEY = "spa-pkce-pending";
  const MAX_TIMEOUT = 2 ** 31 - 1; // setTimeout's limit, about 24.8 days
  const RETRY_MS = 5000;

  let config = null;
  let accessToken = null; // in memory only
  let accessExpiresAt = 0; // ms since the epoch
  let refreshAt = 0;
  let refreshTimer = null;
  let countdownTimer = null;
  let refreshing = null; // the refresh in flight, if any
  let refreshCount = 0;

  const $ = (id) => document.getElementById(id);

  // -- What the user sees -------------------------------------------------------------

  function clock(date) {
    return date.toLocaleTimeString([], { hour12: false });
  }

  function log(message) {
    const item = document.createElement("li");
    const time = document.createElement("time");
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = clock(now);
    item.append(time, message);
    const list = $("log");
    list.prepend(item);
    while (list.children.length > 50) list.lastElementChild.remove();
  }

  function status(message, isError = false) {
    const element = $("status");
    element.textContent = message;
    element.classList.toggle("error", isError);
  }

  function show(state) {
    document.body.dataset.state = state;
    $("logged-out").hidden = state !== "logged-out";
    $("session").hidden = state !== "logged-in";
  }

  function duration(seconds) {
    if (seconds <= 0) return "expired";
    const units = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
    const parts = [];
    for (const [name, size] of units) {
      const count = Math.floor(seconds / size);
      if (count > 0 || (name === "s" && parts.length === 0)) parts.push(`${count} ${name}`);
      seconds -= count * size;
      if (parts.length === 2) break;
    }
    return parts.join(" ");
  }

  function tick() {
    const left = Math.ceil((accessExpiresAt - Date.now()) / 1000);
    $("expires-in").textContent = duration(left);
  }

  // -- Tokens -------------------------------------------------------------------------

  function form(params) {
    return new URLSearchParams({ client_id: config.client_id, ...params });
  }

  async function tokenRequest(params) {
    // Same origin here; "include" also works for a page on another origin of the same site.
    const response = await fetch(config.token_endpoint, {
      method: "POST",
      credentials: "include",
      body: form(params),
    });
    let body = {};
    try {
      body = await response.json();
    } catch {
      // a proxy's HTML error page: keep the status
    }
    return { ok: response.ok, status: response.status, body };
  }

  function accept(body, how) {
    const now = Date.now();
    accessToken = body.access_token;
    accessExpiresAt = now + body.expires_in * 1000;
    // Unless the page keeps refreshing, the session ends when the refresh token does.
    const sessionEnd = new Date(now + body.refresh_expires_in * 1000);
    const when = sessionEnd.toLocaleString([], {
      year: "numeric",
      month: "short",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    });
    $("session-end").textContent = `${when} (in ${duration(body.refresh_expires_in)})`;
    if (how === "refresh") {
      refreshCount += 1;
      $("last-refresh").textContent = `${clock(new Date(now))} (${refreshCount} so far)`;
    }
    // Refresh shortly before expiry: 20% of the lifetime early, at most a minute early.
    const margin = Math.min(60, body.expires_in * 0.2);
    schedule((body.expires_in - margin) * 1000);
    clearInterval(countdownTimer);
    countdownTimer = setInterval(tick, 250);
    tick();
  }

  function schedule(delay) {
    clearTimeout(refreshTimer);
    const wait = Math.min(Math.max(delay, 1000), MAX_TIMEOUT);
    refreshAt = Date.now() + wait;
    refreshTimer = setTimeout(() => silentRefresh("scheduled"), wait);
  }

  function loggedOut(message) {
    accessToken = null;
    accessExpiresAt = 0;
    clearTimeout(refreshTimer);
    clearInterval(countdownTimer);
    refreshTimer = countdownTimer = null;
    $("username").textContent = "—";
    $("pair-id").textContent = "—";
    show("logged-out");
    status(message);
  }

  // A refresh from the cookie: no refresh_token parameter, the browser sends the cookie.
  function refresh(why) {
    if (!refreshing) {
      refreshing = doRefresh(why).finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }

  async function doRefresh(why) {
    let answer;
    try {
      answer = await tokenRequest({ grant_type: "refresh_token" });
    } catch {
      log(`Refresh (${why}) failed: network error; retrying in ${RETRY_MS / 1000} s.`);
      schedule(RETRY_MS);
      return false;
    }
    if (answer.ok) {
      accept(answer.body, "refresh");
      log(`Refreshed the access token (${why}); new lifetime ${duration(answer.body.expires_in)}.`);
      return true;
    }
    const { error, reason } = answer.body;
    if (error === "invalid_grant" || error === "invalid_request") {
      // No cookie, or one whose pair can never refresh again: the session is over.
      const detail = reason ? `${error}, ${reason}` : error;
      log(`Refresh (${why}) refused: ${detail}.`);
      loggedOut(
        why === "page load" && error === "invalid_request"
          ? "You are not logged in."
          : `Your session has ended (${detail}). Log in again.`,
      );
      return false;
    }
    log(`Refresh (${why}) failed: HTTP ${answer.status}; retrying in ${RETRY_MS / 1000} s.`);
    schedule(RETRY_MS);
    return false;
  }

  async function silentRefresh(why) {
    if (await refresh(why)) await whoami();
  }

  // -- The API ------------------------------------------------------------------------

  async function whoami(retried = false) {
    if (!accessToken) return;
    const response = await fetch(config.whoami_endpoint, {
      headers: { Authorization: `Bearer ${accessToken}` },
    });
    if (response.status === 401 && !retried) {
      log("whoami: 401, refreshing and trying once more.");
      if (await refresh("after a 401")) await whoami(true);
      return;
    }
    if (!response.ok) {
      log(`whoami: HTTP ${response.status}.`);
      return;
    }
    const who = await response.json();
    $("username").textContent = who.username;
    $("pair-id").textContent = who.pair_id;
    show("logged-in");
    status(`Logged in as ${who.username}.`);
    // A pair ID is no credential; its end is its random part (the start is a timestamp).
    log(`whoami: ${who.username}, pair …${who.pair_id.slice(-12)}`);
  }

  async function logout() {
    if (Date.now() >= accessExpiresAt && !(await refresh("before logout"))) return;
    let response;
    try {
      response = await fetch(config.logout_endpoint, {
        method: "POST",
        credentials: "include",
        headers: { Authorization: `Bearer ${accessToken}` },
      });
    } catch {
      log("Logout failed: network error.");
      status("Logout failed: network error. Try again.", true);
      return;
    }
    if (!response.ok && response.status !== 401) {
      log(`Logout failed: HTTP ${response.status}.`);
      status(`Logout failed (HTTP ${response.status}). Try again.`, true);
      return;
    }
    // 200: the pair is revoked and the answer cleared the cookie. 401: it was dead already.
    log("Logged out: the pair is revoked and the refresh cookie cleared.");
    loggedOut("You have logged out.");
  }

  // -- Logging in: authorization code with PKCE ---------------------------------------

  function base64url(bytes) {
    let binary = "";
    for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function randomString(byteCount) {
    return base64url(crypto.getRandomValues(new Uint8Array(byteCount)));
  }

  function redirectUri() {
    return new URL("./", location.href).href; // this page, without its query
  }

  async function login() {
    const verifier = randomString(32); // 43 characters
    const state = randomString(16);
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state }));
    const query = new URLSearchParams({
      response_type: "code",
      client_id: config.client_id,
      redirect_uri: redirectUri(),
      state,
      code_challenge: base64url(digest),
      code_challenge_method: "S256",
    });
    log("Going to the authorization endpoint.");
    location.assign(`${config.authorization_endpoint}?${query}`);
  }

  async function finishLogin(params) {
    // Read once, then forget: a reload never replays the code, and the verifier and
    // state are gone from sessionStorage whatever happens next.
    const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
    sessionStorage.removeItem(PENDING_KEY);
    history.replaceState(null, "", location.pathname);

    if (!pending || params.get("state") !== pending.state) {
      log("Authorization response dropped: its state is not the one this tab sent.");
      loggedOut("Login failed: unexpected response. Log in again.");
      return;
    }
    if (params.get("iss") !== config.issuer) {
      log("Authorization response dropped: iss is not this server's issuer.");
      loggedOut("Login failed: the response came from another server.");
      return;
    }
    if (params.has("error")) {
      log(`Authorization refused: ${params.get("error")}.`);
      loggedOut(`Login failed (${params.get("error")}). Log in again.`);
      return;
    }
    let answer;
    try {
      answer = await tokenRequest({
        grant_type: "authorization_code",
        code: params.get("code"),
        redirect_uri: redirectUri(),
        code_verifier: pending.verifier,
      });
    } catch {
      log("Code exchange failed: network error.");
      loggedOut("Login failed: network error. Log in again.");
      return;
    }
    if (!answer.ok) {
      log(`Code exchange refused: ${answer.body.error || `HTTP ${answer.status}`}.`);
      loggedOut("Login failed. Log in again.");
      return;
    }
    accept(answer.body, "login");
    log("Logged in: code exchanged; the refresh token is in the HttpOnly cookie.");
    await whoami();
  }

  // -- Start --------------------------------------------------------------------------

  async function start() {
    $("login").addEventListener("click", login);
    $("logout").addEventListener("click", logout);
    $("whoami").addEventListener("click", () => whoami());
    $("refresh").addEventListener("click", () => silentRefresh("button"));
    // Timers of a hidden tab may be delayed: catch up when it is shown again.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && accessToken && Date.now() >= refreshAt) {
        silentRefresh("tab shown");
      }
    });

    const response = await fetch("/spa/config.json");
    config = await response.json();
    if (!response.ok) {
      status(config.error || `Cannot load the configuration (HTTP ${response.status}).`, true);
      return;
    }
    const params = new URLSearchParams(location.search);
    if (params.has("code") || params.has("error")) {
      await finishLogin(params);
    } else if (await refresh("page load")) {
      // A reload: the cookie alone gives a new access token.
      await whoami();
    }
  }

  start().catch((error) => {
    status(`Unexpected error: ${error.message}`, true);
  });
})();
