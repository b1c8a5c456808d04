/* Sign-in: POST the form to /api/v1/auth/login, which sets the HttpOnly session cookie. */
"use strict";

(() => {
  const HOME = { agent: "/console", department: "/inbox", supervisor: "/dashboard", admin: "/dashboard" };
  const form = document.getElementById("login-form");
  const errorNode = document.getElementById("login-error");
  const button = document.getElementById("login-submit");

  function nextPage(role) {
    const next = new URLSearchParams(location.search).get("next") || "";
    // Only a local path: never an open redirect to another site.
    if (/^\/(?!\/)[A-Za-z0-9/_-]*$/.test(next) && next !== "/login") return next;
    return HOME[role] || "/";
  }

  async function goIfSignedIn() {
    const me = await HL.api("GET", "/api/v1/auth/me");
    if (me.ok && me.data.kind === "user") location.replace(nextPage(me.data.role));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorNode.classList.add("hidden");
    button.disabled = true;
    button.textContent = "登录中…";
    let response;
    try {
      response = await fetch("/api/v1/auth/login", {
        method: "POST",
        credentials: "same-origin",
        body: new URLSearchParams(new FormData(form)),
      });
    } catch (_err) {
      response = null;
    }
    button.disabled = false;
    button.textContent = "登录";
    if (response && response.ok) {
      const me = await HL.api("GET", "/api/v1/auth/me");
      location.replace(nextPage(me.ok ? me.data.role : ""));
      return;
    }
    let message = "无法连接服务器，请稍后重试";
    if (response) {
      message = `登录失败（HTTP ${response.status}）`;
      try {
        const body = await response.json();
        if (typeof body.detail === "string") message = body.detail;
        else if (response.status === 422) message = "请输入用户名和密码";
      } catch (_err) { /* keep the generic message */ }
    }
    errorNode.textContent = message;
    errorNode.classList.remove("hidden");
  });

  goIfSignedIn();
})();
