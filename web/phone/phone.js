// The Switchboard phone page: sign in, dial, answer, hang up, mute, DTMF.
"use strict";

(() => {
  const $ = id => document.getElementById(id);
  const domain = document.querySelector('meta[name="sip-domain"]').content;
  const els = {
    reg: $("reg-state"), error: $("error"), unsupported: $("unsupported"), login: $("login"), user: $("login-user"),
    password: $("login-password"), phone: $("phone"), me: $("me"), logout: $("logout"), incoming: $("incoming"),
    caller: $("incoming-caller"), answer: $("answer"), decline: $("decline"), state: $("call-state"), peer: $("call-peer"),
    timer: $("call-timer"), number: $("number"), backspace: $("backspace"), keypad: $("keypad"), call: $("call"),
    mute: $("mute"), hangup: $("hangup"), remote: $("remote"), tones: $("dtmf-sent"),
  };
  let ua = null;
  let timer = 0;
  // The page's state, for tests and for people debugging a call.
  const api = window.switchboard = { ua: null, get call() { return ua && ua.call; }, get pc() { return ua && ua.call ? ua.call.pc : null } };

  function showError(msg) {
    els.error.textContent = msg || "";
    els.error.hidden = !msg;
  }

  function setReg(text, cls) {
    els.reg.textContent = text;
    els.reg.className = "pill" + (cls ? " " + cls : "");
  }

  // WebRTC is required: say so rather than show a phone that cannot call.
  if (!window.RTCPeerConnection || !window.WebSocket) {
    els.unsupported.textContent = "This browser cannot make calls: it does not support WebRTC. Use a current version of Firefox, Chrome, Edge or Safari.";
    els.unsupported.hidden = false;
    els.login.hidden = true;
    return;
  }
  if (!window.isSecureContext || !navigator.mediaDevices) {
    els.unsupported.textContent = "Calls need the microphone, which browsers allow only on secure pages: open this page over HTTPS (or on localhost).";
    els.unsupported.hidden = false;
  }

  const saved = localStorage.getItem("switchboard.extension");
  if (saved) els.user.value = saved;
  (saved ? els.password : els.user).focus();

  function wsURL() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  }

  els.login.addEventListener("submit", ev => {
    ev.preventDefault();
    showError("");
    const user = els.user.value.trim(), password = els.password.value;
    if (!user || !password) { showError("Enter your extension and password."); return; }
    localStorage.setItem("switchboard.extension", user);
    start(user, password);
  });

  function start(user, password) {
    if (ua) ua.stop();
    ua = api.ua = new SIP.UA({ url: wsURL(), domain, user, password });
    ua.onstate = (state, detail) => {
      switch (state) {
        case "connecting": setReg("Connecting…"); break;
        case "reconnecting": setReg("Reconnecting…", "bad"); if (detail) showError(detail); break;
        case "registered":
          setReg("Registered", "ok");
          showError("");
          els.login.hidden = true;
          els.phone.hidden = false;
          els.me.textContent = user;
          els.password.value = "";
          if (!ua.call) els.number.focus();
          break;
        case "failed":
          setReg("Not signed in", "bad");
          showError(detail);
          if (ua.stopped) { els.login.hidden = false; els.phone.hidden = true; els.password.focus(); }
          break;
        case "stopped": setReg("Signed out"); break;
      }
    };
    ua.onincoming = call => {
      const who = call.peer.name && call.peer.name !== call.peer.user ? `${call.peer.name} (${call.peer.user})` : call.peer.user;
      els.caller.textContent = who || "unknown";
      els.answer.focus();
    };
    ua.oncall = render;
    ua.start();
  }

  els.logout.addEventListener("click", () => {
    if (ua) ua.stop();
    ua = api.ua = null;
    els.phone.hidden = true;
    els.login.hidden = false;
    setReg("Signed out");
    els.password.focus();
  });

  const labels = { calling: "Calling…", ringing: "Ringing…", connecting: "Connecting…", active: "In call" };

  function render(call) {
    const live = call && call.state !== "ended";
    const ringingIn = live && call.incoming && call.state === "ringing";
    els.incoming.hidden = !ringingIn;
    els.call.hidden = live;
    els.hangup.hidden = !live || ringingIn;
    els.mute.hidden = !(live && call.state === "active");
    els.mute.textContent = call && call.muted ? "Unmute" : "Mute";
    els.mute.setAttribute("aria-pressed", call && call.muted ? "true" : "false");
    if (live) {
      const who = call.peer.name && call.peer.name !== call.peer.user ? `${call.peer.name} (${call.peer.user})` : call.peer.user;
      els.state.textContent = ringingIn ? "Incoming call" : labels[call.state] || call.state;
      els.peer.textContent = who;
      if (call.remoteStream && els.remote.srcObject !== call.remoteStream) els.remote.srcObject = call.remoteStream;
      if (call.state === "active" && !timer) {
        tick(call);
        timer = setInterval(() => tick(call), 1000);
      }
      if (call.error) showError(call.endReason);
      return;
    }
    clearInterval(timer);
    timer = 0;
    els.tones.textContent = "";
    els.remote.srcObject = null;
    els.peer.textContent = "";
    els.timer.textContent = "";
    els.state.textContent = call && call.endReason ? call.endReason : "Ready";
    if (call && call.error) showError(call.endReason);
  }

  function tick(call) {
    const s = Math.floor((Date.now() - call.startedAt) / 1000);
    els.timer.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  async function dial() {
    const n = els.number.value.replace(/[\s()-]/g, "");
    if (!n) { showError("Enter a number to call."); els.number.focus(); return; }
    if (!/^[0-9A-Za-z+*#._]+$/.test(n)) { showError("That number has characters a phone cannot dial."); return; }
    showError("");
    try { await ua.dial(n); } catch (e) { showError(e.message); }
  }

  function press(key) {
    const call = ua && ua.call;
    if (call && call.state === "active") {
      if (!ua.dtmf(key)) { showError("This call cannot send keypad tones."); return; }
      els.tones.textContent = (els.tones.textContent + key).slice(-16);
      return;
    }
    els.number.value += key;
    els.number.focus();
  }

  els.call.addEventListener("click", dial);
  els.hangup.addEventListener("click", () => ua && ua.hangup());
  els.answer.addEventListener("click", () => { showError(""); ua && ua.answer(); });
  els.decline.addEventListener("click", () => ua && ua.decline());
  els.mute.addEventListener("click", () => ua && ua.call && ua.mute(!ua.call.muted));
  els.backspace.addEventListener("click", () => { els.number.value = els.number.value.slice(0, -1); els.number.focus(); });
  els.keypad.addEventListener("click", ev => {
    const b = ev.target.closest("button[data-key]");
    if (b) press(b.dataset.key);
  });
  $("dial").addEventListener("submit", ev => { ev.preventDefault(); dial(); });

  document.addEventListener("keydown", ev => {
    if (!ua || els.phone.hidden) return;
    const call = ua.call;
    if (ev.key === "Escape" && call) { ev.preventDefault(); ua.hangup(); return; }
    if (ev.key === "Enter" && call && call.incoming && call.state === "ringing") { ev.preventDefault(); ua.answer(); return; }
    // During a call, digit keys send tones wherever the focus is.
    if (call && call.state === "active" && /^[0-9*#]$/.test(ev.key) && ev.target !== els.number) {
      ev.preventDefault();
      press(ev.key);
    }
  });
  els.number.addEventListener("keydown", ev => {
    const call = ua && ua.call;
    if (call && call.state === "active" && /^[0-9*#]$/.test(ev.key)) {
      ev.preventDefault();
      press(ev.key);
    }
  });

  window.addEventListener("beforeunload", () => { if (ua) ua.stop(); });
})();
